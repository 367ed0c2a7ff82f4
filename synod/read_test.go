package synod_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

func TestLeanRead(t *testing.T) {
	b := func(n uint64) synod.Ballot { return synod.Ballot{Counter: n, Proposer: "p"} }
	rep := func(from string, acc synod.Ballot, v string) synod.ReadReply {
		var val []byte
		if v != "" {
			val = []byte(v)
		}
		return synod.ReadReply{From: from, Key: "k", Accepted: acc, Promised: acc, Value: val}
	}
	failed := func(from string) synod.ReadReply {
		return synod.ReadReply{From: from, Key: "k", Err: errors.New("storage failed")}
	}
	three := synod.Config{Acceptors: []string{"a", "b", "c"}}
	five := synod.Config{Acceptors: []string{"a", "b", "c", "d", "e"}}
	flexible := synod.Config{Acceptors: []string{"a", "b", "c", "d", "e"}, PrepareQuorum: 4, AcceptQuorum: 2}
	higherPromise := rep("b", b(1), "v1")
	higherPromise.Promised = b(9)
	tests := []struct {
		name    string
		cfg     synod.Config
		replies []synod.ReadReply
		want    synod.ReadStatus
		wantVal string
		wantB   synod.Ballot
	}{
		{"majority agrees", three, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(1), "v1")}, synod.ReadDone, "v1", b(1)},
		{"empty register", three, []synod.ReadReply{rep("a", synod.Ballot{}, ""), rep("c", synod.Ballot{}, "")}, synod.ReadDone, "", synod.Ballot{}},
		{"one reply is not enough", three, []synod.ReadReply{rep("a", b(1), "v1")}, synod.ReadPending, "", synod.Ballot{}},
		{"the third settles a split", three, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(2), "v2"), rep("c", b(2), "v2")}, synod.ReadDone, "v2", b(2)},
		{"a split that cannot settle", three, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(2), "v2"), rep("c", b(3), "v3")}, synod.ReadFallback, "", synod.Ballot{}},
		{"a split may still settle", three, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(2), "v2")}, synod.ReadPending, "", synod.Ballot{}},
		{"errors agree with nobody", three, []synod.ReadReply{failed("a"), rep("b", b(1), "v1"), failed("c")}, synod.ReadFallback, "", synod.Ballot{}},
		{"a duplicate reply counts once", three, []synod.ReadReply{rep("a", b(1), "v1"), rep("a", b(1), "v1")}, synod.ReadPending, "", synod.Ballot{}},
		{"an unknown acceptor does not count", three, []synod.ReadReply{rep("a", b(1), "v1"), rep("x", b(1), "v1")}, synod.ReadPending, "", synod.Ballot{}},
		{"another key does not count", three, []synod.ReadReply{rep("a", b(1), "v1"), {From: "b", Key: "other", Accepted: b(1)}}, synod.ReadPending, "", synod.Ballot{}},
		{"a higher promise does not matter", three, []synod.ReadReply{rep("a", b(1), "v1"), higherPromise}, synod.ReadDone, "v1", b(1)},
		{"five need three", five, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(1), "v1"), rep("c", b(1), "v1")}, synod.ReadDone, "v1", b(1)},
		// Q2 = 2 acceptors make a value chosen, but only Q1 = 4 meet every
		// accept quorum.
		{"flexible quorums need max(Q1, Q2)", flexible, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(1), "v1"), rep("c", b(1), "v1")}, synod.ReadPending, "", synod.Ballot{}},
		{"flexible quorums agree", flexible, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(1), "v1"), rep("c", b(1), "v1"), rep("e", b(1), "v1")}, synod.ReadDone, "v1", b(1)},
		{"flexible quorums cannot agree", flexible, []synod.ReadReply{rep("a", b(1), "v1"), rep("b", b(2), "v2"), rep("c", b(3), "v3")}, synod.ReadFallback, "", synod.Ballot{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := synod.NewLeanRead(tt.cfg, "k")
			if got := r.Request(); got.Key != "k" {
				t.Fatalf("request %+v", got)
			}
			for _, rp := range tt.replies {
				r.OnReadReply(rp)
			}
			if got := r.Status(); got != tt.want {
				t.Fatalf("status = %v, want %v", got, tt.want)
			}
			if tt.want != synod.ReadDone {
				return
			}
			v, bal := r.Result()
			if string(v) != tt.wantVal || bal != tt.wantB {
				t.Errorf("result = %q at %v, want %q at %v", v, bal, tt.wantVal, tt.wantB)
			}
		})
	}
}

func TestReadQuorum(t *testing.T) {
	tests := []struct {
		cfg  synod.Config
		want int
	}{
		{synod.Config{Acceptors: []string{"a"}}, 1},
		{synod.Config{Acceptors: []string{"a", "b", "c"}}, 2},
		{synod.Config{Acceptors: []string{"a", "b", "c"}, PrepareQuorum: 3, AcceptQuorum: 1}, 3},
		{synod.Config{Acceptors: []string{"a", "b", "c", "d"}, PrepareQuorum: 2, AcceptQuorum: 3}, 3},
	}
	for _, tt := range tests {
		if got := synod.ReadQuorum(tt.cfg); got != tt.want {
			t.Errorf("ReadQuorum(%+v) = %d, want %d", tt.cfg, got, tt.want)
		}
	}
}

// countingStorage counts the writes of an acceptor.
type countingStorage struct {
	synod.Storage
	stores atomic.Int64
}

func (s *countingStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	s.stores.Add(1)
	return s.Storage.Store(ctx, key, st)
}

// countingCluster returns three acceptors whose stores count writes.
func countingCluster() (*synodtest.LocalTransport, synod.Config, []*countingStorage) {
	var (
		cfg    synod.Config
		accs   []*synod.Acceptor
		stores []*countingStorage
	)
	for _, id := range []string{"a0", "a1", "a2"} {
		s := &countingStorage{Storage: synod.NewMemoryStorage()}
		stores = append(stores, s)
		accs = append(accs, synod.NewAcceptor(id, s))
		cfg.Acceptors = append(cfg.Acceptors, id)
	}
	return synodtest.NewLocalTransport(accs...), cfg, stores
}

// settle waits until every acceptor accepted the same ballot of key, so that
// no write of a change that already returned is still on its way.
func settle(t *testing.T, stores []*countingStorage, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		first, _ := stores[0].Load(context.Background(), key)
		same := true
		for _, s := range stores[1:] {
			st, _ := s.Load(context.Background(), key)
			same = same && st.Accepted == first.Accepted
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the acceptors never agreed on %q", key)
		}
		time.Sleep(time.Millisecond)
	}
}

func writes(stores []*countingStorage) int64 {
	var n int64
	for _, s := range stores {
		n += s.stores.Load()
	}
	return n
}

// A read of a settled register writes nothing; ReadRound and a client
// without lean reads write.
func TestClientReadWritesNothing(t *testing.T) {
	tr, cfg, stores := countingCluster()
	ctx := context.Background()
	// Every acceptor takes every phase, so that settle can tell when the
	// writes are done (thrifty phases would leave one acceptor out).
	c := newTestClient(t, "c", cfg, tr, synod.WithThrifty(false))
	if _, err := c.Change(ctx, "k", incr); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Change(ctx, "k", incr); err != nil {
		t.Fatal(err)
	}
	settle(t, stores, "k")
	reads := []struct {
		name   string
		read   func(context.Context, string) ([]byte, error)
		writes bool
	}{
		{"Read", c.Read, false},
		{"Read of an empty register", func(ctx context.Context, _ string) ([]byte, error) { return c.Read(ctx, "empty") }, false},
		{"ReadRound", c.ReadRound, true},
		{"WithLeanReads(false)", newTestClient(t, "full", cfg, tr, synod.WithLeanReads(false)).Read, true},
	}
	for _, r := range reads {
		before := writes(stores)
		v, err := r.read(ctx, "k")
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if r.name != "Read of an empty register" && string(v) != "2" {
			t.Fatalf("%s = %q, want 2", r.name, v)
		}
		if wrote := writes(stores) > before; wrote != r.writes {
			t.Errorf("%s: wrote %v, want %v", r.name, wrote, r.writes)
		}
	}
}

// When the acceptors disagree, Read falls back to a round, which settles
// the register; the next Read is lean again.
func TestClientReadFallsBack(t *testing.T) {
	tr, cfg, stores := countingCluster()
	ctx := context.Background()
	b := func(n uint64) synod.Ballot { return synod.Ballot{Counter: n, Proposer: "old"} }
	// Three acceptors, three different accepted values: v3 reached only a2.
	for i, st := range []synod.AcceptorState{
		{Promised: b(1), Accepted: b(1), Value: []byte("v1")},
		{Promised: b(2), Accepted: b(2), Value: []byte("v2")},
		{Promised: b(3), Accepted: b(3), Value: []byte("v3")},
	} {
		if err := stores[i].Store(ctx, "k", st); err != nil {
			t.Fatal(err)
		}
	}
	c := newTestClient(t, "c", cfg, tr, synod.WithThrifty(false)) // see TestClientReadWritesNothing
	before := writes(stores)
	// The round builds on the highest accepted value of a prepare quorum:
	// v2 or v3, whichever two acceptors answer first, never v1.
	v, err := c.Read(ctx, "k")
	if err != nil || (string(v) != "v2" && string(v) != "v3") {
		t.Fatalf("Read = %q, %v; want v2 or v3 through a round", v, err)
	}
	want := string(v)
	if writes(stores) == before {
		t.Fatalf("the read wrote nothing, so it was not a round")
	}
	settle(t, stores, "k")
	before = writes(stores)
	if v, err := c.Read(ctx, "k"); err != nil || string(v) != want {
		t.Fatalf("second Read = %q, %v; want %s", v, err, want)
	}
	if writes(stores) != before {
		t.Errorf("the second read wrote; the round should have settled the register")
	}
}

// A lean read that a quorum answered without agreeing waits for the silent
// acceptor only for the stall wait (two hedge delays of 1ms here, with thrifty
// phases; without them a quarter of the phase timeout), not the hour of the
// phase timeout, then reads through a round, which the two acceptors that
// answered can decide. The old wait ran out the test's 30 s context.
func TestClientReadGivesUpOnASilentAcceptor(t *testing.T) {
	tr, cfg, stores := countingCluster()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := func(n uint64) synod.Ballot { return synod.Ballot{Counter: n, Proposer: "old"} }
	// a0 and a1 disagree; a2, which could make either of them a quorum, is
	// silent.
	for i, st := range []synod.AcceptorState{
		{Promised: b(1), Accepted: b(1), Value: []byte("v1")},
		{Promised: b(2), Accepted: b(2), Value: []byte("v2")},
	} {
		if err := stores[i].Store(ctx, "k", st); err != nil {
			t.Fatal(err)
		}
	}
	tr.Isolate("a2")
	c := newTestClient(t, "c", cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Millisecond), synod.WithPhaseTimeout(time.Hour))
	before := writes(stores)
	v, err := c.Read(ctx, "k")
	if err != nil || string(v) != "v2" {
		t.Fatalf("Read = %q, %v; want v2 through a round", v, err)
	}
	if writes(stores) == before {
		t.Fatalf("the read wrote nothing, so it was not a round")
	}
}
