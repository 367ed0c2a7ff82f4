package persistence

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

const natsCluster = "persist"

// natsAcceptors runs three acceptors as NATS services on an embedded server,
// each over a Pebble store in its own directory, which survives stop and start.
type natsAcceptors struct {
	t      *testing.T
	srv    *server.Server
	ids    []string
	dirs   []string
	svcs   []*natstransport.Service
	stores []*pebblestore.Store
}

func newNATSAcceptors(t *testing.T) *natsAcceptors {
	h := &natsAcceptors{t: t, srv: natstest.RunServer(t)}
	for i := range 3 {
		h.ids = append(h.ids, fmt.Sprintf("a%d", i))
		h.dirs = append(h.dirs, t.TempDir())
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

// start opens every store and serves every acceptor.
func (h *natsAcceptors) start() {
	h.t.Helper()
	for i, id := range h.ids {
		st, err := pebblestore.Open(h.dirs[i], pebblestore.WithIdentity(natsCluster, id))
		if err != nil {
			h.t.Fatalf("open store of %s: %v", id, err)
		}
		h.stores = append(h.stores, st)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		svc, err := natstransport.Serve(ctx, natstest.Connect(h.t, h.srv), natsCluster, synod.NewAcceptor(id, st))
		cancel()
		if err != nil {
			h.t.Fatalf("serve %s: %v", id, err)
		}
		h.svcs = append(h.svcs, svc)
	}
}

// stop stops every acceptor and closes its store.
func (h *natsAcceptors) stop() {
	h.t.Helper()
	for i, svc := range h.svcs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := svc.Stop(ctx); err != nil {
			h.t.Errorf("stop %s: %v", h.ids[i], err)
		}
		cancel()
		if err := h.stores[i].Close(); err != nil {
			h.t.Errorf("close store of %s: %v", h.ids[i], err)
		}
	}
	h.svcs, h.stores = nil, nil
}

// provider returns a Provider whose client has its own connection and
// natstransport.Transport.
func (h *natsAcceptors) provider(node string, opts ...Option) *Provider {
	h.t.Helper()
	tr, err := natstransport.NewTransport(natstest.Connect(h.t, h.srv), natsCluster)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = tr.Close() })
	p, err := NewProvider(newTestClient(h.t, tr, synod.Config{Acceptors: h.ids}, node), opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// TestNATSRecoveryMatchesInMemory runs a recovery scenario over acceptors
// reached through natstransport on an embedded NATS server, with Pebble
// storage, side by side with InMemoryProvider; then it restarts every
// acceptor on its data and recovers the actors through a new node.
func TestNATSRecoveryMatchesInMemory(t *testing.T) {
	h := newNATSAcceptors(t)
	sc := scenario{
		interval: 3, actors: 2,
		seed: func(p protopersistence.Provider) { seed(p, journalName(0), 2, "a", "b", "c", "d") },
		steps: []step{{op: "query"}, {op: "send", arg: "e"}, {op: "send", actor: 1, arg: "x"},
			{op: "send", arg: "f"}, {op: "crash"}, {op: "send", arg: "g"}, {op: "snapshot", actor: 1},
			{op: "send", actor: 1, arg: "y"}, {op: "restart", actor: 1}, {op: "query", actor: 1}, {op: "query"}},
		want: [][]string{{"a", "b", "c", "d", "e", "f", "g"}, {"x", "y"}},
	}
	final := sc.compareWith(t, h.provider("node-1", WithSnapshotInterval(sc.interval)))

	h.stop()
	h.start()
	p := h.provider("node-2", WithSnapshotInterval(sc.interval))
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
