package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/actors"
)

// actorState is the state of the benchmark's actor: a counter, padded to the
// workload's value size.
type actorState struct {
	N   int64  `msgpack:"n"`
	Pad []byte `msgpack:"pad"`
}

// counter is the actor logic both actor engines run: an Int64Value adds to
// the counter, and the reply is the new count.
func counter(valueBytes int) actors.Handler[actorState] {
	return func(s actorState, msg proto.Message) (actorState, proto.Message, error) {
		m, ok := msg.(*wrapperspb.Int64Value)
		if !ok {
			return s, nil, fmt.Errorf("unexpected message %T", msg)
		}
		s.N += m.GetValue()
		if len(s.Pad) != valueBytes {
			s.Pad = make([]byte, valueBytes)
		}
		return s, wrapperspb.Int64(s.N), nil
	}
}

// actorRequestTimeout bounds one message to an actor.
const actorRequestTimeout = 10 * time.Second

// actorSet spawns one local actor per key on first use.
type actorSet struct {
	sys   *actor.ActorSystem
	spawn func(key string, valueBytes int) (*actor.Props, error)

	mu   sync.Mutex
	pids map[string]*actor.PID
}

func newActorSet(spawn func(key string, valueBytes int) (*actor.Props, error)) *actorSet {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	return &actorSet{sys: sys, spawn: spawn, pids: map[string]*actor.PID{}}
}

func (s *actorSet) pid(key string, valueBytes int) (*actor.PID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pid, ok := s.pids[key]; ok {
		return pid, nil
	}
	props, err := s.spawn(key, valueBytes)
	if err != nil {
		return nil, err
	}
	pid, err := s.sys.Root.SpawnNamed(props, key)
	if err != nil {
		return nil, err
	}
	s.pids[key] = pid
	return pid, nil
}

func (s *actorSet) close() { s.sys.Shutdown() }

// synodActors runs the counter as protosynod actors (package actors): each
// message is applied in a round of the actor's register, queued messages in
// one round (mailbox batching). Each actor's register goes through the
// proposer that owns its key, as for raw registers.
type synodActors struct {
	set *actorSet
}

func newSynodActors(e *synodEngine) *synodActors {
	return &synodActors{set: newActorSet(func(key string, valueBytes int) (*actor.Props, error) {
		return actors.Props(e.owner(actors.DefaultKeyPrefix+key), counter(valueBytes))
	})}
}

func (a *synodActors) name() string { return "protosynod-actors" }

func (a *synodActors) worker(_, valueBytes int) op {
	msg := wrapperspb.Int64(1)
	return func(ctx context.Context, key string) error {
		pid, err := a.set.pid(key, valueBytes)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, actorRequestTimeout)
		defer cancel()
		_, err = actors.Request(rctx, actors.Local(a.set.sys, pid), msg)
		return err
	}
}

func (a *synodActors) close() { a.set.close() }

// jsActors runs the same counter in plain protoactor actors that keep their
// state in JetStream KV: per message, Get the state, apply the handler, and
// Update with the revision read (Create for a new actor), again from the Get
// on a revision conflict. One activation per actor handles one message at a
// time, as protoactor does.
type jsActors struct {
	set *actorSet
}

func newJSActors(kv *jsKV) *jsActors {
	n := 0
	var mu sync.Mutex
	return &jsActors{set: newActorSet(func(key string, valueBytes int) (*actor.Props, error) {
		mu.Lock()
		store := kv.kvs[n%len(kv.kvs)]
		n++
		mu.Unlock()
		h := counter(valueBytes)
		return actor.PropsFromProducer(func() actor.Actor { return &kvActor{kv: store, key: key, h: h} }), nil
	})}
}

func (a *jsActors) name() string { return "jetstream-kv-actors" }

func (a *jsActors) worker(_, valueBytes int) op {
	msg := wrapperspb.Int64(1)
	return func(ctx context.Context, key string) error {
		pid, err := a.set.pid(key, valueBytes)
		if err != nil {
			return err
		}
		res, err := a.set.sys.Root.RequestFuture(pid, msg, actorRequestTimeout).Result()
		if err != nil {
			return err
		}
		if err, ok := res.(error); ok {
			return err
		}
		return nil
	}
}

func (a *jsActors) close() { a.set.close() }

// kvActor is one actor whose state lives in JetStream KV under key.
type kvActor struct {
	kv  jetstream.KeyValue
	key string
	h   actors.Handler[actorState]
}

// Receive implements actor.Actor.
func (a *kvActor) Receive(ctx actor.Context) {
	msg, ok := ctx.Message().(*wrapperspb.Int64Value)
	if !ok {
		return
	}
	reply, err := a.apply(msg)
	if err != nil {
		ctx.Respond(err)
		return
	}
	ctx.Respond(reply)
}

func (a *kvActor) apply(msg proto.Message) (proto.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), actorRequestTimeout)
	defer cancel()
	for {
		var s actorState
		var rev uint64
		entry, err := a.kv.Get(ctx, a.key)
		switch {
		case err == nil:
			if err := msgpack.Unmarshal(entry.Value(), &s); err != nil {
				return nil, err
			}
			rev = entry.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return nil, err
		}
		next, reply, err := a.h(s, msg)
		if err != nil {
			return nil, err
		}
		b, err := msgpack.Marshal(&next)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			_, err = a.kv.Create(ctx, a.key, b)
		} else {
			_, err = a.kv.Update(ctx, a.key, b, rev)
		}
		switch {
		case err == nil:
			return reply, nil
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			continue // another activation wrote first: read again
		default:
			return nil, err
		}
	}
}
