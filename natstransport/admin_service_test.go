package natstransport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// TestAdminEndpoint calls every admin request over NATS and checks the
// errors come back typed: a stale install carries the acceptor's
// configuration, a conflicting one matches synod.ErrInvalidConfig, an
// acceptor nobody serves synod.ErrUnavailable.
func TestAdminEndpoint(t *testing.T) {
	s := natstest.RunServer(t)
	store := synod.NewMemoryStorage()
	serveOne(t, natstest.Connect(t, s), "a1", store)
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)

	cfg, err := tr.AcceptorConfig(ctx, "a1")
	if err != nil || cfg.Epoch != 0 || len(cfg.Acceptors) != 0 {
		t.Fatalf("config of a fresh acceptor: %v, %v; want the zero Config", cfg, err)
	}
	two := synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 2, Floor: 5}
	if got, err := tr.Install(ctx, "a1", two); err != nil || got.Epoch != 2 {
		t.Fatalf("install epoch 2: %v, %v", got, err)
	}
	if got, err := tr.AcceptorConfig(ctx, "a1"); err != nil || !slices.Equal(got.Acceptors, two.Acceptors) || got.Floor != 5 {
		t.Fatalf("config after install: %v, %v", got, err)
	}
	one := synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 1}
	_, err = tr.Install(ctx, "a1", one)
	var se *synod.StaleEpochError
	if !errors.As(err, &se) || se.Config.Epoch != 2 || se.Acceptor != "a1" {
		t.Fatalf("stale install: got %v, want a *synod.StaleEpochError carrying epoch 2", err)
	}
	other := synod.Config{Acceptors: []string{"a1", "a2", "a4"}, Epoch: 2}
	if _, err := tr.Install(ctx, "a1", other); !errors.Is(err, synod.ErrInvalidConfig) {
		t.Fatalf("conflicting install: got %v, want synod.ErrInvalidConfig", err)
	}

	for i := range 5 {
		k := "k" + strconv.Itoa(i)
		if err := store.Store(ctx, k, synod.AcceptorState{Promised: b2, Accepted: b1, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	_ = store.Store(ctx, "gone", synod.AcceptorState{Promised: b2, Accepted: b2})
	keys, err := tr.ListKeys(ctx, "a1", "", 3)
	if want := []string{"gone", "k0", "k1"}; err != nil || !slices.Equal(keys, want) {
		t.Fatalf("first page: %q, %v; want %q", keys, err, want)
	}
	keys, err = tr.ListKeys(ctx, "a1", "k1", 100)
	if want := []string{"k2", "k3", "k4"}; err != nil || !slices.Equal(keys, want) {
		t.Fatalf("next page: %q, %v; want %q", keys, err, want)
	}
	st, err := tr.State(ctx, "a1", "k3")
	if err != nil || st.Promised != b2 || st.Accepted != b1 || string(st.Value) != "k3" {
		t.Fatalf("state of k3: %+v, %v", st, err)
	}
	if removed, err := tr.Forget(ctx, "a1", "k3", 5); err != nil || removed {
		t.Fatalf("forget a key with a value: removed %v, %v; want false", removed, err)
	}
	if _, err := tr.Forget(ctx, "a1", "gone", 9); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Fatalf("forget above the acceptor's floor: got %v, want synod.ErrInvalidRequest", err)
	}
	if removed, err := tr.Forget(ctx, "a1", "gone", 5); err != nil || !removed {
		t.Fatalf("forget a deleted key: removed %v, %v; want true", removed, err)
	}
	if keys, _ := tr.ListKeys(ctx, "a1", "", 100); slices.Contains(keys, "gone") {
		t.Fatalf("forgotten key still stored: %q", keys)
	}
	if _, _, err := tr.Compact(ctx, "a1"); !errors.Is(err, synod.ErrInvalidConfig) {
		t.Fatalf("compact over a memory storage: got %v, want synod.ErrInvalidConfig", err)
	}
	if _, err := tr.AcceptorConfig(ctx, "a9"); !errors.Is(err, synod.ErrUnavailable) {
		t.Fatalf("acceptor nobody serves: got %v, want synod.ErrUnavailable", err)
	}
}

// TestReconfigureOverNATS replaces a stopped acceptor whose disk is lost by a
// new one, grows to five and shrinks back to three, then deletes keys and
// collects them, all through a synod.Reconfigurer over the admin endpoints,
// while clients built with the first configuration keep incrementing
// counters. No client restarts and no acknowledged increment is lost.
func TestReconfigureOverNATS(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 6, memoryStorage)
	first := synod.Config{Acceptors: h.ids[:3]} // a0 a1 a2; a3..a5 wait, empty
	ctx := ctxTimeout(t, time.Minute)

	newClient := func(name string) *synod.Client {
		tr := newTransport(t, natstest.Connect(t, s))
		c, err := synod.NewClient(synod.RandomProposerID(name), first, tr, synod.WithPhaseTimeout(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var acked [3]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range acked {
		c := newClient(fmt.Sprintf("load%d", w))
		key := fmt.Sprintf("counter%d", w)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.Change(cctx, key, increment)
				cancel()
				if err == nil {
					acked[w].Add(1)
				} else if !errors.Is(err, synod.ErrIndeterminate) && !errors.Is(err, synod.ErrUnavailable) && !errors.Is(err, synod.ErrConflict) {
					t.Errorf("%s: %v", key, err)
					return
				}
			}
		})
	}
	waitFor(t, "load", func() bool { return acked[0].Load() > 5 && acked[2].Load() > 5 })

	optr := newTransport(t, natstest.Connect(t, s))
	op, err := synod.NewClient(synod.RandomProposerID("operator"), first, optr)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	r, err := synod.NewReconfigurer(op, optr, synod.WithProgress(func(p synod.Progress) {
		if p.Err == nil && (len(phases) == 0 || phases[len(phases)-1] != p.Phase) {
			phases = append(phases, p.Phase)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	// a0's disk dies: it never comes back.
	h.stop(0)
	m, err := r.Reconfigure(ctx, []string{"a1", "a2", "a3"}, []string{"a0"})
	if err != nil {
		t.Fatalf("replace a0 by a3: %v", err)
	}
	t.Logf("replaced: %v; phases %v", m.Config, phases)
	if m.Busy() || !slices.Equal(m.Config.Acceptors, []string{"a1", "a2", "a3"}) {
		t.Fatalf("after replace: %+v", m)
	}
	if _, err := r.Reconfigure(ctx, []string{"a1", "a2", "a3", "a4", "a5"}, nil); err != nil {
		t.Fatalf("grow to 5: %v", err)
	}
	if m, err = r.Reconfigure(ctx, []string{"a3", "a4", "a5"}, nil); err != nil {
		t.Fatalf("shrink to 3: %v", err)
	}
	t.Logf("shrunk: %v", m.Config)
	before := acked[1].Load()
	waitFor(t, "load under the last configuration", func() bool { return acked[1].Load() > before+5 })
	close(stop)
	wg.Wait()

	// Every acknowledged increment is there (indeterminate ones at most once).
	for w := range acked {
		v, err := op.Read(ctx, fmt.Sprintf("counter%d", w))
		if err != nil {
			t.Fatal(err)
		}
		if got := counter(t, v); int64(got) < acked[w].Load() {
			t.Fatalf("counter%d = %d, %d increments acknowledged", w, got, acked[w].Load())
		}
	}

	// Delete and collect: the keys leave every living acceptor's storage.
	for i := range 10 {
		if _, err := op.Change(ctx, "del"+strconv.Itoa(i), func([]byte) ([]byte, error) { return []byte("x"), nil }); err != nil {
			t.Fatal(err)
		}
		if err := op.Delete(ctx, "del"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.CollectGarbage(ctx)
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	t.Logf("collection: %+v", res)
	if res.Collected != 10 {
		t.Fatalf("collected %d of 10 deleted keys", res.Collected)
	}
	for _, id := range []string{"a3", "a4", "a5"} {
		keys, err := optr.ListKeys(ctx, id, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if len(k) > 3 && k[:3] == "del" {
				t.Fatalf("%s still stores %s after collection", id, k)
			}
		}
	}
	if v, err := op.Read(ctx, "del3"); err != nil || v != nil {
		t.Fatalf("a collected key reads %q, %v; want empty", v, err)
	}
}

// TestProposerAdoptsAfterEveryAcceptorReplaced: a client that slept while
// every acceptor it knew was replaced one by one (each old one gone for
// good) finds the new configuration through DiscoverConfig and carries on
// without a restart; a client without a configuration source cannot.
func TestProposerAdoptsAfterEveryAcceptorReplaced(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 6, memoryStorage)
	first := synod.Config{Acceptors: h.ids[:3]}
	ctx := ctxTimeout(t, time.Minute)
	newClient := func(name string, opts ...synod.Option) (*synod.Client, *Transport) {
		tr := newTransport(t, natstest.Connect(t, s))
		opts = append([]synod.Option{synod.WithPhaseTimeout(200 * time.Millisecond)}, opts...)
		c, err := synod.NewClient(synod.RandomProposerID(name), first, tr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c, tr
	}
	sleeperTr := newTransport(t, natstest.Connect(t, s))
	sleeper, err := synod.NewClient(synod.RandomProposerID("sleeper"), first, sleeperTr,
		synod.WithPhaseTimeout(200*time.Millisecond), synod.WithConfigSource(sleeperTr.DiscoverConfig))
	if err != nil {
		t.Fatal(err)
	}
	blind, _ := newClient("blind")
	for _, c := range []*synod.Client{sleeper, blind} {
		if _, err := c.Change(ctx, "k", increment); err != nil {
			t.Fatal(err)
		}
	}
	op, optr := newClient("operator")
	r, err := synod.NewReconfigurer(op, optr)
	if err != nil {
		t.Fatal(err)
	}
	for i, nw := range []string{"a3", "a4", "a5"} {
		h.stop(i) // the old acceptor's disk dies; it never returns
		cur := op.Config().Acceptors
		target := append(slices.DeleteFunc(slices.Clone(cur), func(id string) bool { return id == h.ids[i] }), nw)
		if _, err := r.Reconfigure(ctx, target, []string{h.ids[i]}); err != nil {
			t.Fatalf("replace %s by %s: %v", h.ids[i], nw, err)
		}
	}
	if got := op.Config(); !slices.Equal(got.Acceptors, []string{"a3", "a4", "a5"}) {
		t.Fatalf("operator's configuration %v", got)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = blind.Change(cctx, "k", increment)
	cancel()
	if !errors.Is(err, synod.ErrUnavailable) && !errors.Is(err, synod.ErrIndeterminate) {
		t.Fatalf("client without a configuration source: %v, want it to fail (unavailable or indeterminate)", err)
	}
	// The sleeper's first change goes on the one-round-trip path to its dead
	// acceptors: an accept that timed out may have landed, so that change may
	// end indeterminate, but it adopts the new configuration on the way.
	lo, hi := 3, 3
	v, err := sleeper.Change(ctx, "k", increment)
	if errors.Is(err, synod.ErrIndeterminate) {
		t.Logf("first change after the replacements: %v", err)
		lo, hi = 3, 4 // applied at most once
		v, err = sleeper.Change(ctx, "k", increment)
	}
	if err != nil {
		t.Fatalf("sleeper after every acceptor was replaced: %v", err)
	}
	if got := counter(t, v); got < lo || got > hi {
		t.Fatalf("counter = %d, want %d..%d", got, lo, hi)
	}
	if got := sleeper.Config(); !slices.Equal(got.Acceptors, []string{"a3", "a4", "a5"}) {
		t.Fatalf("sleeper's configuration %v", got)
	}
}

// TestCollectAndCompact deletes registers on Pebble acceptors, collects them
// and compacts: the bytes on disk go down.
func TestCollectAndCompact(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 3, pebbleStorage)
	ctx := ctxTimeout(t, time.Minute)
	c, tr := h.client("gc", 1)
	value := make([]byte, 8<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(value) // incompressible
	for i := range 200 {
		if _, err := c.Change(ctx, "big"+strconv.Itoa(i), func([]byte) ([]byte, error) { return value, nil }); err != nil {
			t.Fatal(err)
		}
	}
	full := map[string]uint64{}
	for _, id := range h.ids {
		_, after, err := tr.Compact(ctx, id) // flushed and compacted: the data's size
		if err != nil {
			t.Fatal(err)
		}
		full[id] = after
	}
	for i := range 200 {
		if err := c.Delete(ctx, "big"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := synod.NewReconfigurer(c, tr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.CollectGarbage(ctx)
	if err != nil || res.Collected != 200 {
		t.Fatalf("collect: %+v, %v", res, err)
	}
	for _, id := range h.ids {
		_, after, err := tr.Compact(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes on disk with 200 registers of 8 KiB, %d after deleting and collecting them", id, full[id], after)
		if after >= full[id]/2 {
			t.Errorf("%s: %d bytes after collection, %d before", id, after, full[id])
		}
	}
}

// TestRetiredAcceptorWarns checks that an acceptor left out of a configuration
// it installs says, at the install and again when it is served anew, that it
// is retired and should be removed; a member says nothing of the kind.
func TestRetiredAcceptorWarns(t *testing.T) {
	s := natstest.RunServer(t)
	store := synod.NewMemoryStorage()
	var logs logBuffer
	svc, _ := serveOne(t, natstest.Connect(t, s), "a1", store, WithLogger(newTestLogger(&logs)))
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)
	const retired = "this acceptor is retired"

	if _, err := tr.Install(ctx, "a1", synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), retired) {
		t.Fatalf("a member warned that it is retired:\n%s", logs.String())
	}
	if _, err := tr.Install(ctx, "a1", synod.Config{Acceptors: []string{"a2", "a3", "a4"}, Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), retired); n != 1 {
		t.Fatalf("after the install that left a1 out: %d warnings, want 1:\n%s", n, logs.String())
	}
	if err := svc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	var again logBuffer
	serveOne(t, natstest.Connect(t, s), "a1", store, WithLogger(newTestLogger(&again)))
	if !strings.Contains(again.String(), retired) {
		t.Fatalf("served again while retired, without a warning:\n%s", again.String())
	}
}
