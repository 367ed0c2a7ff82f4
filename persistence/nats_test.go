package persistence

import (
	"slices"
	"testing"

	protopersistence "github.com/asynkron/protoactor-go/persistence"

	"github.com/protosynod/protosynod/internal/acceptortest"
)

// natsProvider returns a Provider whose client has its own connection and
// natstransport.Transport to the acceptors of c.
func natsProvider(t *testing.T, c *acceptortest.Cluster, node string, opts ...Option) *Provider {
	t.Helper()
	p, err := NewProvider(newTestClient(t, c.Transport(t), c.Config(), node), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNATSRecoveryMatchesInMemory runs a recovery scenario over acceptors
// reached through natstransport on an embedded NATS server, with Pebble
// storage, side by side with InMemoryProvider; then it restarts every
// acceptor on its data and recovers the actors through a new node.
func TestNATSRecoveryMatchesInMemory(t *testing.T) {
	h := acceptortest.Start(t, "persist", 3)
	sc := scenario{
		interval: 3, actors: 2,
		seed: func(p protopersistence.Provider) { seed(p, journalName(0), 2, "a", "b", "c", "d") },
		steps: []step{{op: "query"}, {op: "send", arg: "e"}, {op: "send", actor: 1, arg: "x"},
			{op: "send", arg: "f"}, {op: "crash"}, {op: "send", arg: "g"}, {op: "snapshot", actor: 1},
			{op: "send", actor: 1, arg: "y"}, {op: "restart", actor: 1}, {op: "query", actor: 1}, {op: "query"}},
		want: [][]string{{"a", "b", "c", "d", "e", "f", "g"}, {"x", "y"}},
	}
	final := sc.compareWith(t, natsProvider(t, h, "node-1", WithSnapshotInterval(sc.interval)))

	h.Stop()
	h.Start()
	p := natsProvider(t, h, "node-2", WithSnapshotInterval(sc.interval))
	sys := newActorSystem(t)
	for i, want := range final {
		pid, err := sys.Root.SpawnNamed(journalProps(p), journalName(i))
		if err != nil {
			t.Fatal(err)
		}
		if got := queryView(t, sys, pid).state; !slices.Equal(got, want) {
			t.Errorf("%s after the acceptors restarted: %v, want %v", journalName(i), got, want)
		}
	}
}
