package persistence

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// This file holds the persistent actor the actor-level tests run: journal.
// Its state is the list of strings it was sent (so a lost or duplicated event
// shows), events are *wrapperspb.StringValue and snapshots *structpb.ListValue.
// It persists an event before applying it, as protoactor's own tests do.

// requestTimeout bounds every request a test sends to an actor.
const requestTimeout = 10 * time.Second

// Commands and replies of journal that are not persisted.
type (
	query        struct{} // answered with *view
	takeSnapshot struct{} // persist a snapshot now; answered with *ack
	crash        struct{} // panic, so the supervisor restarts the actor
	ack          struct{}
	// nack answers a command whose persistence panicked; the actor then
	// re-panics, so the supervisor restarts it.
	nack struct{ reason interface{} }
	view struct {
		state []string // the actor's state
		trace []string // every message this incarnation handled, in order
	}
)

// journal is the persistent test actor; see the file comment.
type journal struct {
	protopersistence.Mixin
	state []string
	trace []string
}

func newJournal() actor.Actor { return &journal{} }

// Receive implements actor.Actor. It takes the sender before persisting:
// when PersistReceive makes the mixin request a snapshot, protoactor's
// context forgets the current message and sender, so ctx.Respond after it
// would go to dead letters.
func (a *journal) Receive(ctx actor.Context) {
	sender := ctx.Sender()
	reply := func(m interface{}) {
		if sender != nil {
			ctx.Send(sender, m)
		}
	}
	switch m := ctx.Message().(type) {
	case *protopersistence.RequestSnapshot:
		a.trace = append(a.trace, "request-snapshot")
		a.PersistSnapshot(listOf(a.state))
	case *structpb.ListValue:
		a.state = stringsOf(m)
		a.trace = append(a.trace, fmt.Sprintf("snapshot %v", a.state))
	case *wrapperspb.StringValue:
		if a.Recovering() {
			a.trace = append(a.trace, "replay "+m.GetValue())
		} else {
			a.trace = append(a.trace, "event "+m.GetValue())
			a.persist(reply, func() { a.PersistReceive(m) })
		}
		a.state = append(a.state, m.GetValue())
		if !a.Recovering() {
			reply(&ack{})
		}
	case *protopersistence.ReplayComplete:
		a.trace = append(a.trace, "replay-complete")
	case *takeSnapshot:
		a.trace = append(a.trace, "take-snapshot")
		a.persist(reply, func() { a.PersistSnapshot(listOf(a.state)) })
		reply(&ack{})
	case *crash:
		panic("journal: crash requested")
	case *query:
		reply(&view{state: slices.Clone(a.state), trace: slices.Clone(a.trace)})
	}
}

// persist runs f and, if it panics, replies nack before panicking on.
func (a *journal) persist(reply func(interface{}), f func()) {
	defer func() {
		if r := recover(); r != nil {
			reply(&nack{reason: r})
			panic(r)
		}
	}()
	f()
}

func listOf(s []string) *structpb.ListValue {
	l := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(s))}
	for _, v := range s {
		l.Values = append(l.Values, structpb.NewStringValue(v))
	}
	return l
}

func stringsOf(l *structpb.ListValue) []string {
	s := make([]string, 0, len(l.GetValues()))
	for _, v := range l.GetValues() {
		s = append(s, v.GetStringValue())
	}
	return s
}

// inMemory adapts protoactor's InMemoryProvider, which has no GetState, to
// persistence.Provider, as protoactor's own tests do.
type inMemory struct {
	*protopersistence.InMemoryProvider
}

func (p inMemory) GetState() protopersistence.ProviderState { return p.InMemoryProvider }

// newActorSystem returns an actor system that logs nothing and is shut down
// when the test ends.
func newActorSystem(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(sys.Shutdown)
	return sys
}

// journalProps returns the props of a journal persisted by p. Its guardian
// restarts it however often it fails, so that tests that fence it many times
// keep it alive.
func journalProps(p protopersistence.Provider) *actor.Props {
	return actor.PropsFromProducer(newJournal,
		actor.WithReceiverMiddleware(protopersistence.Using(p)),
		actor.WithGuardian(actor.NewOneForOneStrategy(1_000_000, time.Minute, actor.DefaultDecider)))
}

// request sends msg to pid and returns the reply.
func request(t testing.TB, sys *actor.ActorSystem, pid *actor.PID, msg interface{}) interface{} {
	t.Helper()
	r, err := sys.Root.RequestFuture(pid, msg, requestTimeout).Result()
	if err != nil {
		t.Fatalf("request %T to %s: %v", msg, pid.Id, err)
	}
	return r
}

// queryView asks pid for its view.
func queryView(t testing.TB, sys *actor.ActorSystem, pid *actor.PID) *view {
	t.Helper()
	v, ok := request(t, sys, pid, &query{}).(*view)
	if !ok {
		t.Fatalf("query %s: reply is not a view", pid.Id)
	}
	return v
}

// seed writes events and a snapshot through a provider's state directly, as
// protoactor's persistence tests do with their initData: one event per string
// and, if lastSnapshot < len(states), a snapshot at index lastSnapshot of the
// state before that event.
func seed(p protopersistence.Provider, name string, lastSnapshot int, states ...string) {
	st := p.GetState()
	for i, s := range states {
		st.PersistEvent(name, i, wrapperspb.String(s))
	}
	if lastSnapshot < len(states) {
		st.PersistSnapshot(name, lastSnapshot, listOf(states[:lastSnapshot]))
	}
}

// describe renders a reply for comparison.
func describe(r interface{}) string {
	switch r := r.(type) {
	case *ack:
		return "ack"
	case *nack:
		return fmt.Sprintf("nack %v", r.reason)
	case *view:
		return fmt.Sprintf("state [%s] trace [%s]", strings.Join(r.state, " "), strings.Join(r.trace, "; "))
	case proto.Message:
		return fmt.Sprintf("%T %v", r, r)
	}
	return fmt.Sprintf("%T %v", r, r)
}
