package actors_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// writeCounter counts an acceptor's writes.
type writeCounter struct {
	synod.Storage
	n atomic.Int64
}

func (w *writeCounter) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	w.n.Add(1)
	return w.Storage.Store(ctx, key, st)
}

// actors.Read (a batch of Queries alone) costs no disk write once the
// acceptors agree on the register: synod.Client.Read's lean path.
func TestReadWritesNothing(t *testing.T) {
	seed := testSeed(t)
	var (
		cfg    synod.Config
		accs   []*synod.Acceptor
		stores []*writeCounter
	)
	for _, id := range []string{"a0", "a1", "a2"} {
		s := &writeCounter{Storage: synod.NewMemoryStorage()}
		stores = append(stores, s)
		accs = append(accs, synod.NewAcceptor(id, s))
		cfg.Acceptors = append(cfg.Acceptors, id)
	}
	// Every acceptor takes every write, so the wait below can tell when
	// they are done (thrifty phases would leave one acceptor out).
	reg := newClients(t, synodtest.NewLocalTransport(accs...), cfg, seed, 1, synod.WithThrifty(false))[0]
	sys := quiet(t)
	to := actors.Local(sys, spawn(t, sys, reg, "reader"))
	ctx := context.Background()
	for range 3 {
		if _, err := add(ctx, to, 2); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the last accept to reach every acceptor.
	deadline := time.Now().Add(5 * time.Second)
	for {
		first, _ := stores[0].Load(ctx, "actors/reader")
		same := true
		for _, s := range stores[1:] {
			st, _ := s.Load(ctx, "actors/reader")
			same = same && st.Accepted == first.Accepted
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the acceptors never agreed")
		}
		time.Sleep(time.Millisecond)
	}
	writes := func() (n int64) {
		for _, s := range stores {
			n += s.n.Load()
		}
		return n
	}
	before := writes()
	if got := balance(t, to); got != 6 {
		t.Fatalf("balance %d, want 6", got)
	}
	if w := writes() - before; w != 0 {
		t.Errorf("actors.Read wrote %d times, want none", w)
	}
}
