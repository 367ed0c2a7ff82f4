package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/protosynod/protosynod/synod/dedup"
)

// errNoChange is what a batch's change function returns when the batch
// changed nothing (only reads, refusals and duplicates): synod then writes the
// current value back instead of a new one, which is never indeterminate.
var errNoChange = errors.New("actors: batch changed nothing")

// item is one message waiting for a round or in one.
type item struct {
	msg    proto.Message
	sender *actor.PID // nil when nobody waits for a reply
	id     string     // request ID; "" when none
	query  bool
}

// run is what one run of a batch's change function computed.
type run struct {
	raw     []byte          // the value it proposed
	env     envelope        // raw, decoded
	replies []proto.Message // one per item
}

// round is one Change of the register applying a batch of items in order.
type round[S any] struct {
	a     *activation[S]
	items []*item
	runs  []*run // in order; the last is the latest
	err   error  // the round's error, if it failed as a whole

	replies []proto.Message // the result: one reply per item
	done    chan struct{}   // closed when replies is set
	sent    bool            // replies were sent (actor goroutine only)
}

func newRound[S any](a *activation[S], items []*item) *round[S] {
	return &round[S]{a: a, items: items, done: make(chan struct{})}
}

// onlyQueries reports whether the batch is all reads.
func (r *round[S]) onlyQueries() bool {
	for _, it := range r.items {
		if !it.query {
			return false
		}
	}
	return true
}

// do runs the round and sets r.replies. It runs on its own goroutine.
func (r *round[S]) do(ctx context.Context) {
	defer close(r.done)
	a := r.a
	if r.onlyQueries() {
		v, err := a.reg.Read(ctx, a.key)
		if err == nil {
			_, err = r.change(v)
			if errors.Is(err, errNoChange) {
				err = nil
			}
		}
		r.finish(err, r.latest())
		return
	}
	v, err := a.reg.Change(ctx, a.key, r.change)
	switch {
	case errors.Is(err, errNoChange):
		// The value the latest run read was written back unchanged, so its
		// replies are the ones to give.
		r.finish(nil, r.latest())
	case err != nil:
		r.finish(err, nil)
	default:
		// The committed value is one that a run of this round proposed; its
		// replies (including the recorded ones it replayed) are the answer,
		// even if a later run computed others on a value that lost.
		for i := len(r.runs) - 1; i >= 0; i-- {
			if ru := r.runs[i]; ru.raw != nil && bytes.Equal(ru.raw, v) {
				a.memo.committed(ru.raw, ru.env)
				r.finish(nil, ru)
				return
			}
		}
		r.finish(fmt.Errorf("actors: committed value of %q is none of this round's", a.key), nil)
	}
}

func (r *round[S]) latest() *run {
	if len(r.runs) == 0 {
		return nil
	}
	return r.runs[len(r.runs)-1]
}

func (r *round[S]) finish(err error, ru *run) {
	r.replies = make([]proto.Message, len(r.items))
	if err == nil && ru == nil {
		err = fmt.Errorf("actors: round on %q ended without a run", r.a.key)
	}
	if err != nil {
		r.err = err
		rep := protocolReply(err)
		for i := range r.replies {
			r.replies[i] = rep
		}
		return
	}
	copy(r.replies, ru.replies)
}

// change is the batch's change function: it applies every item's handler in
// order to the state in cur, records the replies of requests with IDs in the
// senders table, and returns the new register value. It is pure: it depends
// only on cur and the items, and leaves no trace but the run it appends to
// r.runs.
func (r *round[S]) change(cur []byte) ([]byte, error) {
	a := r.a
	env, err := a.memo.load(cur)
	if err != nil {
		return nil, err
	}
	if env.Codec != "" && env.Codec != a.codec.Name() {
		return nil, fmt.Errorf("%w: register %q holds a %s state, codec is %s", ErrInvalid, a.key, env.Codec, a.codec.Name())
	}
	ru := &run{replies: make([]proto.Message, len(r.items))}
	r.runs = append(r.runs, ru)

	stateBytes := env.State
	var (
		state   S
		fresh   bool // state holds stateBytes, decoded
		seq     = env.Seq
		senders = env.Senders
		noted   bool // senders changed
	)
	for i, it := range r.items {
		if it.query {
			ru.replies[i] = &State{Codec: a.codec.Name(), Data: stateBytes, Version: seq}
			continue
		}
		var id dedup.ID
		if it.id != "" {
			id = dedup.ParseID(it.id)
			switch v, rep := senders.Check(id); v {
			case dedup.Replay:
				ru.replies[i] = decodeReply(it.id, rep)
				continue
			case dedup.Stale:
				// Its sender moved on after a reply to it: nobody waits for
				// this one, which is a late copy.
				ru.replies[i] = &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
					Message: fmt.Sprintf("actors: request %s: its sender's later request was recorded; not applied", it.id)}
				continue
			}
		}
		if !fresh {
			if state, err = decodeState[S](a.codec, stateBytes); err != nil {
				return nil, err
			}
			fresh = true
		}
		next, reply := a.apply(state, it)
		var rec []byte
		if it.id != "" {
			if rec, err = encodeReply(reply); err != nil {
				// Only a handler's reply can fail to encode (ours never do):
				// refuse the message rather than record what cannot be replayed.
				next, reply = nil, &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID, Message: err.Error()}
				if rec, err = encodeReply(reply); err != nil {
					return nil, err
				}
			}
		}
		if next != nil {
			state, stateBytes = next.state, next.bytes
			if seq == env.Seq {
				seq++
			}
		} else {
			fresh = false // a failed handler may have modified state in place
		}
		ru.replies[i] = reply
		if it.id != "" {
			if senders, err = senders.With(id, rec, a.opts.window); err != nil {
				return nil, fmt.Errorf("%w: record request %s: %v", ErrInvalid, it.id, err)
			}
			noted = true
		}
	}
	if !noted && bytes.Equal(stateBytes, env.State) {
		return nil, errNoChange
	}
	ru.env = envelope{
		Codec:   a.codec.Name(),
		Seq:     env.Seq + 1,
		State:   stateBytes,
		Writer:  a.writer,
		Run:     a.runs.Add(1),
		Senders: senders,
	}
	if ru.raw, err = encodeEnvelope(&ru.env); err != nil {
		return nil, fmt.Errorf("%w: encode register value: %v", ErrInvalid, err)
	}
	return ru.raw, nil
}

// applied is the state after a successful handler, with its encoding.
type applied[S any] struct {
	state S
	bytes []byte
}

// apply runs the handler on one message. It returns the new state, or nil
// when the handler refused or panicked (the state stays as it was), and the
// reply to give.
func (a *activation[S]) apply(state S, it *item) (next *applied[S], reply proto.Message) {
	defer func() {
		if v := recover(); v != nil {
			a.opts.logger.Warn("actors: handler panicked", "key", a.key, "msg", fmt.Sprintf("%T", it.msg), "panic", v)
			next, reply = nil, panicReply(v)
		}
	}()
	s, rep, err := a.h(state, it.msg)
	if err != nil {
		return nil, handlerReply(err)
	}
	b, err := a.codec.Marshal(s)
	if err != nil {
		return nil, &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("actors: encode %s state after %T: %v", a.codec.Name(), it.msg, err)}
	}
	switch {
	case rep == nil:
		rep = &emptypb.Empty{}
	case any(rep) == any(s):
		// A protobuf state replied as itself: the next message of the batch
		// may modify it in place before the reply is sent.
		rep = proto.Clone(rep)
	}
	return &applied[S]{state: s, bytes: b}, rep
}
