package actors

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/dedup"
)

// DefaultRequestTimeout bounds a Request whose context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// Target is where Request sends messages: an actor's PID (Local) or a
// cluster grain (Grain).
type Target interface {
	// String names the target in errors.
	String() string
	// hashTo writes what identifies the target to h (see senderPool).
	hashTo(h *maphash.Hash)
	// attempt delivers msg once and waits for the reply.
	attempt(ctx context.Context, msg proto.Message, id string) (any, error)
}

// Local returns the Target of the actor pid, reached from sys (which may be
// another node's system when pid is remote).
func Local(sys *actor.ActorSystem, pid *actor.PID) Target { return localTarget{sys: sys, pid: pid} }

// Grain returns the Target of the grain of the given identity and kind in
// cluster c (the argument order of cluster.Cluster.Get). Its register key is
// "kind/identity" after the prefix.
func Grain(c *cluster.Cluster, identity, kind string) Target {
	return grainTarget{c: c, identity: identity, kind: kind}
}

type localTarget struct {
	sys *actor.ActorSystem
	pid *actor.PID
}

func (t localTarget) String() string { return t.pid.String() }

func (t localTarget) hashTo(h *maphash.Hash) {
	h.WriteString(t.pid.GetAddress())
	h.WriteByte('/')
	h.WriteString(t.pid.GetId())
}

func (t localTarget) attempt(ctx context.Context, msg proto.Message, id string) (any, error) {
	return requestPID(ctx, t.sys, t.pid, msg, id)
}

type grainTarget struct {
	c              *cluster.Cluster
	identity, kind string
}

func (t grainTarget) String() string { return t.kind + "/" + t.identity }

func (t grainTarget) hashTo(h *maphash.Hash) {
	h.WriteString(t.kind)
	h.WriteByte('/')
	h.WriteString(t.identity)
}

func (t grainTarget) attempt(ctx context.Context, msg proto.Message, id string) (any, error) {
	pid, ok := t.c.PidCache.Get(t.identity, t.kind)
	if !ok || pid == nil {
		var err error
		if pid, err = lookupGrain(ctx, t.c, t.identity, t.kind); err != nil {
			return nil, err
		}
		if pid == nil {
			return nil, fmt.Errorf("%w: no member activated the grain", ErrNoActor)
		}
		t.c.PidCache.Set(t.identity, t.kind, pid)
	}
	res, err := requestPID(ctx, t.c.ActorSystem, pid, msg, id)
	if err != nil {
		// The activation may be gone (or the member): look it up afresh.
		t.c.PidCache.RemoveByValue(t.identity, t.kind, pid)
	}
	return res, err
}

// lookupGrain asks the cluster's identity lookup for the grain's PID, but
// returns when ctx ends: protoactor's lookup takes no context and waits up
// to its own timeout (5s by default) for a member that may have crashed. The
// lookup goroutine finishes on its own, within that timeout.
func lookupGrain(ctx context.Context, c *cluster.Cluster, identity, kind string) (*actor.PID, error) {
	found := make(chan *actor.PID, 1)
	go func() { found <- c.Get(identity, kind) }()
	select {
	case pid := <-found:
		return pid, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: looking up %s/%s: %w", ErrNoActor, kind, identity, ctx.Err())
	}
}

// requestPID sends msg with request ID id to pid and waits for the reply.
func requestPID(ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, msg proto.Message, id string) (any, error) {
	d := DefaultRequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	if d <= 0 {
		return nil, fmt.Errorf("%w: %w", ErrNoActor, context.DeadlineExceeded)
	}
	fut := actor.NewFuture(sys, d)
	env := &actor.MessageEnvelope{Message: msg, Sender: fut.PID()}
	env.SetHeader(RequestIDHeader, id)
	sys.Root.Send(pid, env)

	type result struct {
		res any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := fut.Result()
		ch <- result{res, err}
	}()
	select {
	case r := <-ch:
		switch {
		case errors.Is(r.err, actor.ErrDeadLetter):
			return nil, fmt.Errorf("%w: %w", ErrNoActor, r.err)
		case r.err != nil:
			return nil, fmt.Errorf("%w (%w): %w", ErrNoReply, synod.ErrIndeterminate, r.err)
		}
		return r.res, nil
	case <-ctx.Done():
		sys.Root.Stop(fut.PID())
		return nil, fmt.Errorf("%w (%w): %w", ErrNoReply, synod.ErrIndeterminate, ctx.Err())
	}
}

// RequestOption configures Request and Read.
type RequestOption func(*requestOptions)

type requestOptions struct {
	id      string
	attempt time.Duration
	codec   Codec
}

// WithRequestID sets the request ID (default: the message's RequestID() if
// it is a RequestIDer, otherwise the next ID of a sender of this process,
// see Request). Send a message again with the ID of a failed request
// (RequestError.ID) to apply it at most once. An ID of the form
// "~sender.n" (n a positive decimal number) is a sequenced ID, which
// Request makes; any other ID is a one-shot ID, recorded on its own (see
// package dedup).
func WithRequestID(id string) RequestOption { return func(o *requestOptions) { o.id = id } }

// WithRetry makes Request wait at most d for each attempt and, while its
// context lasts, send the message again with the same request ID after any
// outcome that says it was not applied or may have been (no reply, no
// actor for a grain, synod.ErrIndeterminate, ErrUnavailable, ErrConflict,
// ErrStorage, ErrStopped).
// The actor's deduplication makes those retries apply the message at most
// once. Handler errors are never retried.
func WithRetry(d time.Duration) RequestOption { return func(o *requestOptions) { o.attempt = d } }

// WithStateCodec sets the codec Read decodes the state with (default: as
// Props chooses for S).
func WithStateCodec(c Codec) RequestOption { return func(o *requestOptions) { o.codec = c } }

// senderPool holds the senders of this process's Requests that are not in
// flight. A sender is held by one Request at a time, so that its sequence
// numbers reach each actor in order and one at a time.
//
// A free sender waits in the slot of the last target it was used for (a
// hash of the target), and a Request takes the sender of its target's slot
// when there is one: an actor that this process sends to one request at a
// time then sees the same sender each time, and its register keeps one
// senders-table entry for this process instead of one per sender the
// process has (each entry holds a sender ID and a reply; with 64 Requests
// in flight spread over many actors, the tables grew to ~64 entries, ~5 KB
// written with every change of every actor). Requests in flight to one
// actor at the same time still need a sender each.
type senderPool struct {
	mu    sync.Mutex
	seed  maphash.Seed
	slots [senderSlots]*dedup.Sender
	free  []*dedup.Sender // free senders whose slot was taken
}

// senders is the process's pool: request IDs must not repeat within a
// process, whatever actor systems it runs.
var senders = senderPool{seed: maphash.MakeSeed()}

const (
	// senderSlots bounds the senders waiting in slots: a process keeps at
	// most this many plus maxFreeSenders.
	senderSlots    = 1024
	maxFreeSenders = 1024
)

// slot returns the slot of target.
func (p *senderPool) slot(to Target) int {
	var h maphash.Hash
	h.SetSeed(p.seed)
	to.hashTo(&h)
	return int(h.Sum64() % senderSlots)
}

// take returns a sender for a Request to the target in slot: the one that
// waits there, else a free one, else a new one.
func (p *senderPool) take(slot int) *dedup.Sender {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.slots[slot]; s != nil {
		p.slots[slot] = nil
		return s
	}
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	return dedup.NewSender()
}

// put returns s, last used for the target in slot, to the pool.
func (p *senderPool) put(slot int, s *dedup.Sender) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.slots[slot] == nil:
		p.slots[slot] = s
	case len(p.free) < maxFreeSenders:
		p.free = append(p.free, s)
	}
}

// NewRequestID returns a random request ID.
func NewRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Request sends msg to the actor at to and returns its reply. A reply that
// is an ErrorReply comes back as a *RequestError whose Err is the reply's
// error (see ErrorReply.Err): a *HandlerError (matching ErrHandler and the
// handler's own HandlerError sentinels), or an error matching
// synod.ErrIndeterminate, synod.ErrUnavailable, synod.ErrConflict,
// synod.ErrStorage (acceptors' storage failed; synod.ErrNoSpace when they
// are out of space), ErrStopped or ErrInvalid. No reply before ctx's deadline gives ErrNoReply,
// which matches synod.ErrIndeterminate; an undeliverable request gives
// ErrNoActor.
//
// Every request but a Query carries a request ID (see WithRequestID), so
// that sending it again after an indeterminate outcome applies it at most
// once. By default the ID is the next of a sender that this Request holds
// alone while it runs (a process keeps as many senders as it has Requests
// in flight), so an actor's register keeps one entry per sender rather than
// one per request; a Request takes the sender last used for its target when
// that one is free, so an actor this process sends to one request at a time
// keeps one entry for the process. A Request that ends with an error other
// than the handler's retires its sender: RequestError.ID stays valid for a
// retry.
func Request(ctx context.Context, to Target, msg proto.Message, opts ...RequestOption) (_ proto.Message, err error) {
	var o requestOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.id == "" {
		if r, ok := msg.(RequestIDer); ok {
			o.id = r.RequestID()
		}
	}
	if _, query := msg.(*Query); o.id == "" && !query {
		slot := senders.slot(to)
		s := senders.take(slot)
		o.id = s.Next().String()
		defer func() {
			if err == nil || errors.Is(err, ErrHandler) {
				senders.put(slot, s) // the actor answered: the sender may go on
			}
		}()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	backoff := time.Millisecond
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if o.attempt > 0 {
			actx, cancel = context.WithTimeout(ctx, o.attempt)
		}
		res, err := to.attempt(actx, msg, o.id)
		cancel()
		if err == nil {
			err = replyErr(res)
		}
		if err == nil {
			return res.(proto.Message), nil
		}
		if o.attempt <= 0 || !retryable(to, err) || ctx.Err() != nil {
			return nil, &RequestError{ID: o.id, Target: to.String(), Err: err}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// replyErr returns the error a reply stands for, or nil for a reply to give
// back.
func replyErr(res any) error {
	switch r := res.(type) {
	case *ErrorReply:
		return r.Err()
	case proto.Message:
		if r != nil {
			return nil
		}
	}
	return fmt.Errorf("%w: reply %T is not a protobuf message", ErrInvalid, res)
}

// retryable reports whether a request that failed with err may be sent
// again: it was not applied, or may have been but carries its request ID.
// An undeliverable request is retried for grains only, which the cluster
// activates again; a dead local PID stays dead.
func retryable(to Target, err error) bool {
	if errors.Is(err, ErrHandler) || errors.Is(err, ErrInvalid) {
		return false
	}
	if _, grain := to.(grainTarget); !grain && errors.Is(err, ErrNoActor) {
		return false
	}
	for _, e := range []error{synod.ErrIndeterminate, synod.ErrUnavailable, synod.ErrConflict, synod.ErrStorage, ErrStopped, ErrNoActor, ErrNoReply} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Read returns the state of the actor at to, through a Query, linearizably:
// it reflects every message the actor acknowledged before Read began. A
// batch of Queries alone reads the register with Registers.Read, which for a
// *synod.Client writes nothing when the acceptors agree (synod.Client.Read).
func Read[S any](ctx context.Context, to Target, opts ...RequestOption) (S, error) {
	var o requestOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := o.codec
	if c == nil {
		c = Msgpack()
		if isProto[S]() {
			c = Protobuf()
		}
	}
	var zero S
	res, err := Request(ctx, to, &Query{}, opts...)
	if err != nil {
		return zero, err
	}
	st, ok := res.(*State)
	if !ok {
		return zero, fmt.Errorf("%w: reply to a query is %T", ErrInvalid, res)
	}
	if len(st.Data) > 0 && st.Codec != c.Name() {
		return zero, fmt.Errorf("%w: state encoded with %s, decoding with %s", ErrInvalid, st.Codec, c.Name())
	}
	return decodeState[S](c, st.Data)
}
