package persistence

import (
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// counter counts the events it was sent; with persist set it persists each
// one (and a snapshot of the count every snapshot interval).
type counter struct {
	protopersistence.Mixin
	persist bool
	n       int64
}

func (c *counter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *wrapperspb.Int64Value:
		c.n = m.GetValue()
	case *wrapperspb.StringValue:
		sender := ctx.Sender()
		if c.persist && !c.Recovering() {
			c.PersistReceive(m)
		}
		c.n++
		if sender != nil {
			ctx.Send(sender, c.n)
		}
	case *protopersistence.RequestSnapshot:
		c.PersistSnapshot(wrapperspb.Int64(c.n))
	}
}

// BenchmarkRequestResponse sends a request to an actor and waits for its
// reply, the actor persisting one 64-byte event per request: without
// persistence, with protoactor's InMemoryProvider, and with this package's
// Provider over three in-process acceptors (LocalTransport, memory storage:
// the protocol's cost without network or fsync). Snapshot interval 100
// unless the name says otherwise.
func BenchmarkRequestResponse(b *testing.B) {
	const interval = 100
	ours, _, _ := newTestProvider(b, WithSnapshotInterval(interval))
	ours10, _, _ := newTestProvider(b, WithSnapshotInterval(10))
	tests := []struct {
		name     string
		provider protopersistence.Provider
	}{
		{"none", nil},
		{"inmemory", inMemory{protopersistence.NewInMemoryProvider(interval)}},
		{"register-local", ours},
		// The register holds the events since the snapshot, and every event
		// rewrites it: a shorter interval means a smaller value to copy.
		{"register-local-interval10", ours10},
	}
	msg := wrapperspb.String(strings.Repeat("x", 64))
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			sys := newActorSystem(b)
			props := actor.PropsFromProducer(func() actor.Actor { return &counter{persist: tt.provider != nil} })
			if tt.provider != nil {
				props = actor.PropsFromProducer(func() actor.Actor { return &counter{persist: true} },
					actor.WithReceiverMiddleware(protopersistence.Using(tt.provider)))
			}
			pid, err := sys.Root.SpawnNamed(props, "counter")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sys.Root.RequestFuture(pid, msg, 5*time.Second).Result(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
