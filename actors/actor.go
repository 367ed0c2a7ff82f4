package actors

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/synod"
)

// RequestIDHeader is the message envelope header that carries a request's
// ID. A message may carry its ID instead by implementing RequestIDer.
const RequestIDHeader = "synod-request-id"

// RequestIDer is implemented by messages that carry their own request ID.
// The RequestIDHeader header, when present, takes precedence.
type RequestIDer interface {
	RequestID() string
}

// Handler is an actor's message handler, and the change function of its
// register: it returns the state after msg, the reply to msg, and an error
// to refuse msg. It must be pure: it may run several times for one message,
// on different states, and only the run whose result a quorum accepted
// produces the reply the sender gets. It may modify state in place, but must
// not retain it, msg, or the reply, nor return part of the state in the reply
// (a protobuf state returned as the reply itself is cloned). A nil reply is
// sent as google.protobuf.Empty.
//
// An error refuses the message: the state stays as it was and the sender
// gets the error (see HandlerError). So does a panic.
type Handler[S any] func(state S, msg proto.Message) (S, proto.Message, error)

// Registers is the register store the actors run their rounds against. A
// *synod.Client implements it.
type Registers interface {
	// Change applies f to the register key atomically and returns the value
	// committed (see synod.Client.Change).
	Change(ctx context.Context, key string, f synod.ChangeFunc) ([]byte, error)
	// Read returns the register's value linearizably (see
	// synod.Client.Read, which writes nothing when the acceptors agree).
	Read(ctx context.Context, key string) ([]byte, error)
}

var _ Registers = (*synod.Client)(nil)

// Props returns protoactor Props whose actors keep their state of type S in
// a register of reg, changed only by h.
//
// Each message of an activation (a running actor of the Props) is applied
// in a round of reg.Change with h as the change function, and the sender
// gets h's reply, h's error as an ErrorReply, or the round's error as an
// ErrorReply (see Request). While a round is in flight, messages wait;
// the next round applies all of them in order (up to WithMaxBatch) and
// commits once: that is mailbox batching, which makes a hot actor cost one
// round per batch rather than per message.
//
// The register key is WithKeyPrefix's prefix followed by WithKey's key, or
// the grain's cluster identity ("kind/identity") for cluster kinds, or the
// actor's name (so spawn local actors with SpawnNamed). Any number of
// activations of one key, on any nodes, may run at once: every message goes
// through a round on the latest value, so none is lost or applied twice.
//
// Messages that carry a request ID (RequestIDHeader or RequestIDer) are
// applied at most once per ID, within the last WithDedupWindow senders: a
// retry gets the recorded reply. Query messages read the state.
func Props[S any](reg Registers, h Handler[S], opts ...Option) (*actor.Props, error) {
	o := defaultOptions()
	if isProto[S]() {
		o.codec = Protobuf()
	} else {
		o.codec = Msgpack()
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case reg == nil:
		return nil, fmt.Errorf("%w: nil Registers", ErrInvalidConfig)
	case h == nil:
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidConfig)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &activation[S]{reg: reg, h: h, opts: o, codec: o.codec, writer: randomUint64()}
	}), nil
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return binary.LittleEndian.Uint64(b[:])
}

// activation is one running actor. Its fields other than memo and runs
// are used by the actor's goroutine only; memo and runs by the goroutine of
// its one round in flight.
type activation[S any] struct {
	reg    Registers
	h      Handler[S]
	opts   options
	codec  Codec
	key    string
	writer uint64        // random ID of this activation's runs
	runs   atomic.Uint64 // counts change-function runs that proposed a value
	memo   memo          // the register value last seen, decoded

	pending  []*item   // messages waiting for a round
	inflight *round[S] // the round in flight, if any
}

// Receive implements actor.Actor.
func (a *activation[S]) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.key = a.opts.prefix + a.keyOf(ctx)
	case *actor.Stopping:
		a.stop(ctx)
	case *actor.Stopped, *actor.Restarting, *actor.ReceiveTimeout, *actor.Terminated,
		actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		a.receive(ctx, m)
	}
}

// keyOf returns the register key of the activation, before the prefix.
func (a *activation[S]) keyOf(ctx actor.Context) string {
	if a.opts.key != "" {
		return a.opts.key
	}
	if ci := clusterIdentity(ctx); ci != nil {
		return ci.AsKey()
	}
	return ctx.Self().GetId()
}

// clusterIdentity returns the grain's identity, or nil for an actor that is
// not a cluster grain (cluster.GetClusterIdentity panics for those).
func clusterIdentity(ctx actor.Context) (ci *cluster.ClusterIdentity) {
	defer func() {
		if recover() != nil {
			ci = nil
		}
	}()
	return cluster.GetClusterIdentity(ctx)
}

func (a *activation[S]) receive(ctx actor.Context, m any) {
	msg, ok := m.(proto.Message)
	if !ok || msg == nil {
		a.reply(ctx, ctx.Sender(), &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("actors: %T is not a protobuf message", m)})
		return
	}
	it := &item{msg: msg, sender: ctx.Sender()}
	if h := ctx.MessageHeader(); h != nil {
		it.id = h.Get(RequestIDHeader)
	}
	if it.id == "" {
		if r, ok := m.(RequestIDer); ok {
			it.id = r.RequestID()
		}
	}
	_, it.query = m.(*Query)
	a.pending = append(a.pending, it)
	if a.opts.onQueue != nil {
		a.opts.onQueue(len(a.pending))
	}
	if a.inflight == nil {
		a.start(ctx)
	}
}

// start runs a round on the waiting messages. The round runs on its own
// goroutine; the actor goes on receiving (and queueing) messages, and
// handles the round's end as a continuation in its own context.
func (a *activation[S]) start(ctx actor.Context) {
	n := min(len(a.pending), a.opts.maxBatch)
	r := newRound(a, a.pending[:n:n])
	a.pending = a.pending[n:]
	if len(a.pending) == 0 {
		a.pending = nil
	}
	a.inflight = r
	sys := ctx.ActorSystem()
	done := actor.NewFuture(sys, -1)
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), a.opts.roundTimeout)
		r.do(rctx)
		cancel()
		sys.Root.Send(done.PID(), r)
	}()
	ctx.ReenterAfter(done, func(any, error) { a.finish(ctx, r) })
}

// finish answers the senders of round r and starts the next round.
func (a *activation[S]) finish(ctx actor.Context, r *round[S]) {
	if r.sent {
		return
	}
	r.sent = true
	a.inflight = nil
	for i, it := range r.items {
		a.reply(ctx, it.sender, r.replies[i])
	}
	if len(a.pending) > 0 {
		a.start(ctx)
	}
}

// stop answers every message the activation holds as it stops: the round in
// flight gets its replies once it ends (it is bounded by the round
// timeout), the waiting messages ErrStopped.
func (a *activation[S]) stop(ctx actor.Context) {
	if r := a.inflight; r != nil {
		<-r.done
		r.sent = true
		a.inflight = nil
		for i, it := range r.items {
			a.reply(ctx, it.sender, r.replies[i])
		}
	}
	rep := &ErrorReply{Code: ErrorCode_ERROR_CODE_STOPPED, Message: ErrStopped.Error()}
	for _, it := range a.pending {
		a.reply(ctx, it.sender, rep)
	}
	a.pending = nil
}

func (a *activation[S]) reply(ctx actor.Context, to *actor.PID, m proto.Message) {
	if to != nil {
		ctx.Send(to, m)
	}
}
