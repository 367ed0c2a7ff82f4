package synodtest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// cluster is a LocalTransport with acceptors that can be added later.
type cluster struct {
	t      *testing.T
	tr     *synodtest.LocalTransport
	cfg    synod.Config
	stores map[string]*synod.MemoryStorage
}

func newCluster(t *testing.T, n int) *cluster {
	tr, cfg, stores := synodtest.NewLocalCluster(n)
	c := &cluster{t: t, tr: tr, cfg: cfg, stores: map[string]*synod.MemoryStorage{}}
	for i, s := range stores {
		c.stores[cfg.Acceptors[i]] = s
	}
	return c
}

// start runs a new, empty acceptor id.
func (c *cluster) start(id string) {
	s := synod.NewMemoryStorage()
	c.stores[id] = s
	c.tr.Add(synod.NewAcceptor(id, s))
}

func (c *cluster) client(name string, opts ...synod.Option) *synod.Client {
	c.t.Helper()
	opts = append([]synod.Option{synod.WithPhaseTimeout(100 * time.Millisecond), synod.WithLeanReads(false)}, opts...)
	cl, err := synod.NewClient(synod.RandomProposerID(name), c.cfg, c.tr, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *cluster) reconfigurer(name string, opts ...synod.ReconfigOption) *synod.Reconfigurer {
	c.t.Helper()
	r, err := synod.NewReconfigurer(c.client(name), c.tr, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// TestReconfigureUnderLoad replaces a dead acceptor, grows the cluster to
// five and shrinks it back to three while clients built with the first
// configuration keep incrementing counters; no client is restarted, and no
// acknowledged increment is lost.
func TestReconfigureUnderLoad(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var acked, unknown [4]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range acked {
		cl := c.client(fmt.Sprintf("load%d", w))
		key := fmt.Sprintf("counter%d", w)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Microsecond): // a steady load, not a busy loop
				}
				_, err := cl.Change(ctx, key, func(cur []byte) ([]byte, error) {
					n, _ := strconv.Atoi(string(cur))
					return []byte(strconv.Itoa(n + 1)), nil
				})
				switch {
				case err == nil:
					acked[w].Add(1)
				case errors.Is(err, synod.ErrIndeterminate):
					// A round cut short by a fence, whose value a rescan then
					// carried at a higher ballot: allowed, never success.
					unknown[w].Add(1)
				}
			}
		})
	}
	var phases []string
	r := c.reconfigurer("operator", synod.WithProgress(func(p synod.Progress) {
		if p.Err == nil && (p.Phase == "step done" || p.Phase == "done") {
			phases = append(phases, fmt.Sprintf("%s %v", p.Phase, p.Config))
		}
	}))

	// Each operation starts once every counter moved on by 20 more.
	progressed := func() {
		t.Helper()
		var base [len(acked)]int64
		for w := range acked {
			base[w] = acked[w].Load()
		}
		for w := range acked {
			for acked[w].Load() < base[w]+20 {
				if ctx.Err() != nil {
					t.Fatal("the load made no progress")
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	progressed()
	c.tr.Isolate("a1") // its disk is gone: it never answers again
	c.start("a3")
	if _, err := r.Reconfigure(ctx, []string{"a0", "a3", "a2"}, []string{"a1"}); err != nil {
		t.Fatalf("replace a1 by a3: %v", err)
	}
	progressed()
	c.start("a4")
	c.start("a5")
	if _, err := r.Reconfigure(ctx, []string{"a0", "a3", "a2", "a4", "a5"}, nil); err != nil {
		t.Fatalf("grow to 5: %v", err)
	}
	progressed()
	m, err := r.Reconfigure(ctx, []string{"a0", "a4", "a5"}, nil)
	if err != nil {
		t.Fatalf("shrink to 3: %v", err)
	}
	progressed()
	close(stop)
	wg.Wait()
	t.Logf("steps: %q", phases)
	if m.Config.Epoch != 6 || !sameIDs(m.Config.Acceptors, []string{"a0", "a4", "a5"}) || m.Busy() {
		t.Fatalf("final membership %+v", m)
	}
	// Former members serve nobody: a reader that knows only them learns
	// where the cluster went.
	reader := c.client("reader")
	for w := range acked {
		v, err := reader.Read(ctx, fmt.Sprintf("counter%d", w))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := strconv.ParseInt(string(v), 10, 64)
		if a, u := acked[w].Load(), unknown[w].Load(); got < a || got > a+u {
			t.Errorf("counter%d = %d, want %d acknowledged increments and at most %d indeterminate ones", w, got, a, u)
		} else {
			t.Logf("counter%d = %d: %d acknowledged, %d indeterminate", w, got, a, u)
		}
	}
	if reader.Config().Epoch != 6 {
		t.Errorf("reader config %v", reader.Config())
	}
}

func sameIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, id := range a {
		seen[id] = true
	}
	for _, id := range b {
		if !seen[id] {
			return false
		}
	}
	return true
}

// TestReconfigureResume interrupts a reconfiguration right after it claimed
// a step and finishes it from another process's Reconfigurer.
func TestReconfigureResume(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	cl := c.client("writer")
	for i := range 20 {
		if _, err := cl.Change(ctx, fmt.Sprintf("k%d", i), func([]byte) ([]byte, error) { return []byte("v"), nil }); err != nil {
			t.Fatal(err)
		}
	}
	c.start("a3")
	c.start("a4")
	ictx, cancel := context.WithCancel(ctx)
	r1 := c.reconfigurer("op1", synod.WithProgress(func(p synod.Progress) {
		if p.Phase == "rescan" && p.Config.Epoch == 2 {
			cancel() // the operator's process dies during the second step's rescan
		}
	}))
	if _, err := r1.Reconfigure(ictx, []string{"a0", "a1", "a2", "a3", "a4"}, nil); err == nil {
		t.Fatal("interrupted reconfiguration returned no error")
	}
	r2 := c.reconfigurer("op2")
	m, err := r2.Members(ctx)
	if err != nil || !m.Busy() || m.Config.Epoch != 2 {
		t.Fatalf("membership after the interruption: %+v, %v", m, err)
	}
	if _, err := r2.Reconfigure(ctx, []string{"a0", "a1", "a2"}, nil); !errors.Is(err, synod.ErrBusy) {
		t.Fatalf("another reconfiguration while one is under way: %v, want ErrBusy", err)
	}
	if m, err = r2.Resume(ctx); err != nil || m.Busy() || len(m.Config.Acceptors) != 5 {
		t.Fatalf("Resume: %+v, %v", m, err)
	}
	// The new acceptors hold every key: the rescan ran.
	for _, id := range []string{"a3", "a4"} {
		if n := c.stores[id].Len(); n < 20 {
			t.Errorf("%s holds %d keys after the rescan", id, n)
		}
	}
	// A former member's ID never returns, and a new acceptor must be empty.
	if _, err := r2.Reconfigure(ctx, []string{"a0", "a1", "a2", "a3"}, nil); err != nil {
		t.Fatal(err)
	}
	c.start("a4") // same ID, fresh disk
	if _, err := r2.Reconfigure(ctx, []string{"a0", "a1", "a2", "a3", "a4"}, nil); !errors.Is(err, synod.ErrInvalidConfig) {
		t.Fatalf("re-adding a retired ID: %v, want ErrInvalidConfig", err)
	}
	c.start("a9")
	_ = c.stores["a9"].Store(ctx, "junk", synod.AcceptorState{Promised: synod.Ballot{Counter: 1, Proposer: "x"}})
	if _, err := r2.Reconfigure(ctx, []string{"a0", "a1", "a2", "a3", "a9"}, nil); !errors.Is(err, synod.ErrInvalidConfig) {
		t.Fatalf("adding a non-empty acceptor: %v, want ErrInvalidConfig", err)
	}
}

// TestDeleteAndCollect deletes registers, collects them, and checks that
// their storage is gone, that they read empty and can be written again, and
// that a proposer holding a one-round-trip entry from before the deletion
// cannot bring the old value back. Paper: §3.
func TestDeleteAndCollect(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	// Nothing here is lost or isolated, so no phase should time out: the
	// stale client's refused fast-path accept must hear every refusal, or
	// its retry is rightly indeterminate, and 100 ms is too short for that
	// on a loaded machine.
	stale := c.client("stale", synod.WithPhaseTimeout(10*time.Second))
	deleter := c.client("deleter", synod.WithPhaseTimeout(10*time.Second))
	set := func(cl *synod.Client, k, v string) {
		t.Helper()
		if _, err := cl.Change(ctx, k, func([]byte) ([]byte, error) { return []byte(v), nil }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		set(deleter, fmt.Sprintf("k%d", i), "v")
	}
	set(stale, "k0", "old") // stale now holds a one-round-trip entry for k0
	for i := range 5 {
		if err := deleter.Delete(ctx, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := deleter.Delete(ctx, synod.MembershipKey); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Fatalf("deleting a reserved key: %v", err)
	}
	before := c.stores["a0"].Len()
	r, err := synod.NewReconfigurer(deleter, c.tr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collection: %+v; a0 held %d keys, now %d", res, before, c.stores["a0"].Len())
	if res.Collected != 5 || res.Removed != 15 || c.stores["a0"].Len() != before-5+1 { // +1: the membership record
		t.Fatalf("collection %+v, a0 holds %d keys (had %d)", res, c.stores["a0"].Len(), before)
	}
	// The stale proposer's cached entry is from before the deletion: its
	// change must build on the empty register, not on "old".
	v, err := stale.Change(ctx, "k0", func(cur []byte) ([]byte, error) { return append(cur, "+new"...), nil })
	if err != nil || string(v) != "+new" {
		t.Fatalf("stale proposer after GC: %q, %v", v, err)
	}
	if v, err := deleter.Read(ctx, "k1"); err != nil || len(v) != 0 {
		t.Fatalf("deleted k1 reads %q, %v", v, err)
	}
	set(deleter, "k1", "again")
	if v, err := stale.Read(ctx, "k1"); err != nil || string(v) != "again" {
		t.Fatalf("rewritten k1 reads %q, %v", v, err)
	}
	// Nothing left to collect but what was written since.
	if res, err := r.CollectGarbage(ctx); err != nil || res.Collected != 0 {
		t.Fatalf("second collection: %+v, %v", res, err)
	}
}

// TestCollectAfterInterruptedCollection: a collection whose fence cannot
// reach an acceptor stops at its deadline with its floor step recorded but
// not done; the next collection finishes that step first instead of
// refusing with ErrBusy.
func TestCollectAfterInterruptedCollection(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	cl := c.client("gc")
	for i := range 4 {
		k := fmt.Sprintf("k%d", i)
		if _, err := cl.Change(ctx, k, func([]byte) ([]byte, error) { return []byte("v"), nil }); err != nil {
			t.Fatal(err)
		}
		if err := cl.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	r, err := synod.NewReconfigurer(cl, c.tr)
	if err != nil {
		t.Fatal(err)
	}
	// The collection reads the keys' states at every acceptor first, then
	// claims the floor step and fences: isolate a2 once the claim is in.
	fenced := make(chan struct{})
	var once sync.Once
	r2, err := synod.NewReconfigurer(cl, c.tr, synod.WithProgress(func(p synod.Progress) {
		if p.Phase == "claim" {
			once.Do(func() { c.tr.Isolate("a2"); close(fenced) })
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = r2.CollectGarbage(short)
	cancel()
	<-fenced
	if err == nil {
		t.Fatal("collection with a2 unreachable succeeded")
	}
	m, err := r.Members(ctx)
	if err != nil || !m.Busy() {
		t.Fatalf("after the interrupted collection: %+v, %v; want its step recorded and not done", m, err)
	}
	c.tr.Heal()
	res, err := r.CollectGarbage(ctx)
	if err != nil {
		t.Fatalf("collection after an interrupted one: %v", err)
	}
	if res.Collected != 4 {
		t.Fatalf("collected %+v, want the 4 deleted keys", res)
	}
}
