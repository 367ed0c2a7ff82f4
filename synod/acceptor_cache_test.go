package synod_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/protosynod/protosynod/internal/metrictest"
	"github.com/protosynod/protosynod/synod"
)

// loadCountingStorage is a MemoryStorage and BatchStorage that counts Loads per
// key and can fail Loads, Stores and batch entries.
type loadCountingStorage struct {
	*synod.MemoryStorage
	mu        sync.Mutex
	loads     map[string]int
	failLoad  error
	failStore error
	// refuse, if set, refuses the batch entries it returns an error for
	// (a *synod.BatchError), as a store below its space reserve does.
	refuse func(key string) error
}

func newLoadCounting() *loadCountingStorage {
	return &loadCountingStorage{MemoryStorage: synod.NewMemoryStorage(), loads: make(map[string]int)}
}

func (s *loadCountingStorage) Load(ctx context.Context, key string) (synod.AcceptorState, error) {
	s.mu.Lock()
	s.loads[key]++
	fail := s.failLoad
	s.mu.Unlock()
	if fail != nil {
		return synod.AcceptorState{}, fail
	}
	return s.MemoryStorage.Load(ctx, key)
}

func (s *loadCountingStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	s.mu.Lock()
	fail := s.failStore
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

func (s *loadCountingStorage) StoreBatch(ctx context.Context, entries []synod.KeyState) error {
	s.mu.Lock()
	fail := s.failStore
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	errs := make([]error, len(entries))
	refused := false
	for i, e := range entries {
		if s.refuse != nil {
			if errs[i] = s.refuse(e.Key); errs[i] != nil {
				refused = true
				continue
			}
		}
		if err := s.MemoryStorage.Store(ctx, e.Key, e.State); err != nil {
			return err
		}
	}
	if refused {
		return &synod.BatchError{Errs: errs}
	}
	return nil
}

func (s *loadCountingStorage) loadsOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads[key]
}

// prepare sends a prepare of key with ballot counter c and returns the
// reply, failing the test on an error.
func mustPrepare(t *testing.T, a *synod.Acceptor, key string, c uint64) synod.PrepareReply {
	t.Helper()
	rep, err := a.Prepare(context.Background(), synod.PrepareRequest{Key: key, Ballot: bal(c, "p")})
	if err != nil {
		t.Fatalf("prepare %s %d: %v", key, c, err)
	}
	return rep
}

func mustAccept(t *testing.T, a *synod.Acceptor, key string, c uint64, v []byte) {
	t.Helper()
	rep, err := a.Accept(context.Background(), synod.AcceptRequest{Key: key, Ballot: bal(c, "p"), Value: v})
	if err != nil || !rep.OK {
		t.Fatalf("accept %s %d: %+v, %v", key, c, rep, err)
	}
}

// wantLoads checks how many times key was loaded from the storage so far.
func wantLoads(t *testing.T, s *loadCountingStorage, key string, want int) {
	t.Helper()
	if got := s.loadsOf(key); got != want {
		t.Errorf("loads of %q = %d, want %d", key, got, want)
	}
}

// TestStateCacheHitSkipsStorage: after a key's first request, the next ones
// are served from the cache, and what they see is what was stored.
func TestStateCacheHitSkipsStorage(t *testing.T) {
	s := newLoadCounting()
	a := synod.NewAcceptor("a0", s)
	mustPrepare(t, a, "k", 1)
	mustAccept(t, a, "k", 1, []byte("v1"))
	mustAccept(t, a, "k", 2, []byte("v2"))
	rep := mustPrepare(t, a, "k", 3)
	if !rep.OK || rep.Accepted != bal(2, "p") || string(rep.Value) != "v2" {
		t.Errorf("prepare after accepts = %+v, want a promise with v2 at 2", rep)
	}
	r, err := a.Read(context.Background(), synod.ReadRequest{Key: "k"})
	if err != nil || r.Promised != bal(3, "p") || string(r.Value) != "v2" {
		t.Errorf("read = %+v, %v; want promised 3, v2", r, err)
	}
	wantLoads(t, s, "k", 1)
	if got, want := a.CacheStats(), (synod.CacheStats{Hits: 4, Misses: 1}); got.Hits != want.Hits || got.Misses != want.Misses || got.Registers != 1 {
		t.Errorf("cache stats = %+v, want 4 hits, 1 miss, 1 register", got)
	}
	// The cache holds exactly the stored state.
	stored, _ := s.MemoryStorage.Load(context.Background(), "k")
	st, _ := a.State(context.Background(), "k")
	if stored.Promised != st.Promised || stored.Accepted != st.Accepted || string(stored.Value) != string(st.Value) {
		t.Errorf("cached state %+v, stored %+v", st, stored)
	}
}

// TestStateCacheDisabled: WithStateCache(0) reads the storage every time.
func TestStateCacheDisabled(t *testing.T) {
	s := newLoadCounting()
	a := synod.NewAcceptor("a0", s, synod.WithStateCache(0))
	for c := range uint64(3) {
		mustPrepare(t, a, "k", c+1)
	}
	wantLoads(t, s, "k", 3)
	if got := a.CacheStats(); got != (synod.CacheStats{}) {
		t.Errorf("cache stats = %+v, want zero", got)
	}
}

// TestStateCacheNilAndEmptyValues: the cache keeps the difference between a
// tombstone (nil value, see Client.Delete) and an empty value, and a reply's
// value is not the cache's: changing it changes nothing the acceptor holds.
func TestStateCacheNilAndEmptyValues(t *testing.T) {
	ctx := context.Background()
	s := newLoadCounting()
	a := synod.NewAcceptor("a0", s)
	mustAccept(t, a, "empty", 1, []byte{})
	mustAccept(t, a, "tomb", 1, []byte("v"))
	mustAccept(t, a, "tomb", 2, nil) // the tombstone
	for key, wantNil := range map[string]bool{"empty": false, "tomb": true} {
		r, err := a.Read(ctx, synod.ReadRequest{Key: key})
		if err != nil || len(r.Value) != 0 || (r.Value == nil) != wantNil {
			t.Errorf("read %s = %+v, %v; want nil value %v", key, r, err, wantNil)
		}
		wantLoads(t, s, key, 1)
	}
	mustAccept(t, a, "v", 1, []byte("abc"))
	rep := mustPrepare(t, a, "v", 2)
	rep.Value[0] = 'X'
	_ = append(rep.Value[:1], 'Y')
	if r, _ := a.Read(ctx, synod.ReadRequest{Key: "v"}); string(r.Value) != "abc" {
		t.Errorf("after changing a reply's value the acceptor reads %q, want abc", r.Value)
	}
	// A value of the same size replaces the cached one in place: what was
	// handed out before keeps its bytes.
	r, _ := a.Read(ctx, synod.ReadRequest{Key: "v"})
	st, _ := a.State(ctx, "v")
	mustAccept(t, a, "v", 3, []byte("xyz"))
	if string(r.Value) != "abc" || string(st.Value) != "abc" {
		t.Errorf("a read and State before a same-size accept now hold %q, %q; want abc", r.Value, st.Value)
	}
	if r, _ := a.Read(ctx, synod.ReadRequest{Key: "v"}); string(r.Value) != "xyz" {
		t.Errorf("after the accept the acceptor reads %q, want xyz", r.Value)
	}
	wantLoads(t, s, "v", 1)
}

// TestStateCacheRequestValueCopied: the cache copies an accepted value, so
// a transport that reuses the request's buffer changes nothing cached.
func TestStateCacheRequestValueCopied(t *testing.T) {
	a := synod.NewAcceptor("a0", newLoadCounting())
	buf := []byte("value")
	mustAccept(t, a, "k", 1, buf)
	copy(buf, "XXXXX")
	if rep := mustPrepare(t, a, "k", 2); string(rep.Value) != "value" {
		t.Errorf("promise value %q after the request buffer changed, want value", rep.Value)
	}
}

// TestStateCacheEvictsByBytes: the cache keeps the registers it has room
// for by its byte count, least recently used first out.
func TestStateCacheEvictsByBytes(t *testing.T) {
	s := newLoadCounting()
	value := make([]byte, 1000)
	// Each register costs its 1,000-byte value, its key, two proposer IDs
	// and an overhead of a few hundred bytes: 3,000 bytes hold two.
	a := synod.NewAcceptor("a0", s, synod.WithStateCache(3000))
	for _, k := range []string{"k1", "k2"} {
		mustAccept(t, a, k, 1, value)
	}
	mustPrepare(t, a, "k1", 2) // k1 is now the most recently used
	mustAccept(t, a, "k3", 1, value)
	st := a.CacheStats()
	if st.Registers != 2 || st.Bytes > 3000 || st.Bytes < 2000 {
		t.Errorf("cache stats %+v, want 2 registers in 2000..3000 bytes", st)
	}
	mustPrepare(t, a, "k1", 3) // kept
	mustPrepare(t, a, "k2", 2) // evicted: read again
	wantLoads(t, s, "k1", 1)
	wantLoads(t, s, "k2", 2)
	// A register larger than the whole cache is not cached, and leaves
	// no older state of its key behind.
	mustAccept(t, a, "k2", 3, make([]byte, 4000))
	mustPrepare(t, a, "k2", 4)
	wantLoads(t, s, "k2", 3)
	if st := a.CacheStats(); st.Bytes > 3000 {
		t.Errorf("cache holds %d bytes, more than its 3000", st.Bytes)
	}
}

// TestStateCacheInvalidation: after every failure or removal, the next
// request of the key reads the storage again, and sees what it holds.
func TestStateCacheInvalidation(t *testing.T) {
	ctx := context.Background()
	boom := fmt.Errorf("disk: %w", synod.ErrStorage)
	tests := []struct {
		name string
		// run gets a with "k" and "other" cached and makes the cached
		// state of "k" unusable; the next request of "k" must load it.
		run func(t *testing.T, a *synod.Acceptor, s *loadCountingStorage)
	}{
		{"store error", func(t *testing.T, a *synod.Acceptor, s *loadCountingStorage) {
			s.failStore = boom
			if _, err := a.Accept(ctx, synod.AcceptRequest{Key: "k", Ballot: bal(5, "p"), Value: []byte("lost")}); !errors.Is(err, boom) {
				t.Fatalf("accept with a failing store: %v, want %v", err, boom)
			}
			s.failStore = nil
		}},
		{"batch error", func(t *testing.T, a *synod.Acceptor, s *loadCountingStorage) {
			s.failStore = boom
			reps := a.ApplyBatch(ctx, []synod.BatchRequest{acc("k", bal(5, "p"), "lost", synod.Ballot{}), acc("other", bal(5, "p"), "lost", synod.Ballot{})})
			for _, r := range reps {
				if !errors.Is(r.Err, boom) {
					t.Fatalf("batch with a failing store: %+v", r)
				}
			}
			s.failStore = nil
		}},
		{"batch entry refused", func(t *testing.T, a *synod.Acceptor, s *loadCountingStorage) {
			s.refuse = func(key string) error {
				if key == "k" {
					return fmt.Errorf("reserve: %w", synod.ErrNoSpace)
				}
				return nil
			}
			reps := a.ApplyBatch(ctx, []synod.BatchRequest{acc("k", bal(5, "p"), "lost", synod.Ballot{}), acc("other", bal(5, "p"), "kept", synod.Ballot{})})
			if !errors.Is(reps[0].Err, synod.ErrNoSpace) || reps[1].Err != nil {
				t.Fatalf("batch with k refused: %+v", reps)
			}
			s.refuse = nil
			// The stored entry stays cached.
			before := s.loadsOf("other")
			if r, _ := a.Read(ctx, synod.ReadRequest{Key: "other"}); string(r.Value) != "kept" {
				t.Errorf("other reads %q, want kept", r.Value)
			}
			wantLoads(t, s, "other", before)
		}},
		{"load error", func(t *testing.T, a *synod.Acceptor, s *loadCountingStorage) {
			// Evicted by a failed store, then a failed load: nothing
			// is cached in between.
			s.failStore = boom
			_, _ = a.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: bal(5, "p")})
			s.failStore, s.failLoad = nil, boom
			if _, err := a.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: bal(6, "p")}); !errors.Is(err, boom) {
				t.Fatalf("prepare with a failing load: %v", err)
			}
			s.failLoad = nil
		}},
		{"forget (garbage collection)", func(t *testing.T, a *synod.Acceptor, s *loadCountingStorage) {
			mustAccept(t, a, "k", 3, nil) // the tombstone
			if _, err := a.Install(ctx, synod.Config{Epoch: 1, Floor: 3, Acceptors: []string{"a0"}}); err != nil {
				t.Fatal(err)
			}
			// Below the floor: refused without reaching the key.
			rep, err := a.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: bal(3, "p"), Epoch: 1})
			if err != nil || rep.OK {
				t.Errorf("prepare at the floor = %+v, %v; want a refusal", rep, err)
			}
			removed, err := a.Forget(ctx, "k", 3)
			if err != nil || !removed {
				t.Fatalf("forget = %v, %v", removed, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newLoadCounting()
			a := synod.NewAcceptor("a0", s)
			mustAccept(t, a, "k", 1, []byte("v1"))
			mustAccept(t, a, "other", 1, []byte("o1"))
			mustPrepare(t, a, "k", 2)
			tt.run(t, a, s)
			before := s.loadsOf("k")
			r, err := a.Read(ctx, synod.ReadRequest{Key: "k", Epoch: 1})
			if err != nil {
				t.Fatal(err)
			}
			wantLoads(t, s, "k", before+1)
			stored, _ := s.MemoryStorage.Load(ctx, "k")
			if r.Promised != stored.Promised || r.Accepted != stored.Accepted || string(r.Value) != string(stored.Value) {
				t.Errorf("read %+v, stored %+v", r, stored)
			}
		})
	}
}

// TestStateCacheRestart: a new Acceptor on the same storage starts with an
// empty cache and reads what the storage holds, even if it changed while no
// acceptor ran.
func TestStateCacheRestart(t *testing.T) {
	ctx := context.Background()
	s := newLoadCounting()
	a := synod.NewAcceptor("a0", s)
	mustAccept(t, a, "k", 1, []byte("v1"))
	if err := s.MemoryStorage.Store(ctx, "k", synod.AcceptorState{Promised: bal(7, "q"), Accepted: bal(7, "q"), Value: []byte("v7")}); err != nil {
		t.Fatal(err)
	}
	b := synod.NewAcceptor("a0", s)
	if rep := mustPrepare(t, b, "k", 8); rep.Accepted != bal(7, "q") || string(rep.Value) != "v7" {
		t.Errorf("restarted acceptor promises %+v, want v7 at 7", rep)
	}
}

// TestStateCacheConcurrent runs batches of random requests on overlapping
// keys from many goroutines against a cache that holds a few registers,
// then checks that every cached state is the stored one (run with -race).
func TestStateCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newLoadCounting()
	a := synod.NewAcceptor("a0", s, synod.WithStateCache(2000))
	const workers, rounds, keys = 8, 200, 12
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range rounds {
				var reqs []synod.BatchRequest
				for range 1 + rng.IntN(4) {
					k := fmt.Sprintf("k%d", rng.IntN(keys))
					b := bal(uint64(i*workers+w+1), fmt.Sprintf("p%d", w))
					switch rng.IntN(3) {
					case 0:
						reqs = append(reqs, prep(k, b))
					case 1:
						reqs = append(reqs, acc(k, b, fmt.Sprintf("v%d-%d", w, i), synod.Ballot{}))
					default:
						reqs = append(reqs, read(k))
					}
				}
				for _, r := range a.ApplyBatch(ctx, reqs) {
					if r.Err != nil {
						t.Error(r.Err)
					}
				}
				if st := a.CacheStats(); st.Bytes > 2000 {
					t.Errorf("cache holds %d bytes, more than its 2000", st.Bytes)
				}
			}
		}()
	}
	wg.Wait()
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		stored, _ := s.MemoryStorage.Load(ctx, k)
		st, err := a.State(ctx, k)
		if err != nil || st.Promised != stored.Promised || st.Accepted != stored.Accepted || string(st.Value) != string(stored.Value) {
			t.Errorf("%s: acceptor state %+v, %v; stored %+v", k, st, err, stored)
		}
	}
	if st := a.CacheStats(); st.Hits == 0 || st.Misses == 0 {
		t.Errorf("cache stats %+v: want hits and misses (evictions)", st)
	}
}

// TestStateCacheMetrics: lookups are exported by result, with the cache's
// size.
func TestStateCacheMetrics(t *testing.T) {
	reader := metrictest.New()
	a := synod.NewAcceptor("a0", newLoadCounting(), synod.WithAcceptorMeterProvider(reader.Provider))
	mustPrepare(t, a, "k", 1)
	mustPrepare(t, a, "k", 2)
	mustPrepare(t, a, "k", 3)
	tests := []struct {
		name  string
		attrs []string
		want  float64
	}{
		{"synod.acceptor.state_cache.lookups", []string{"acceptor", "a0", "result", "hit"}, 2},
		{"synod.acceptor.state_cache.lookups", []string{"acceptor", "a0", "result", "miss"}, 1},
		{"synod.acceptor.state_cache.registers", []string{"acceptor", "a0"}, 1},
	}
	for _, tt := range tests {
		if got := reader.Get(t, tt.name, metrictest.Attrs(tt.attrs...)...); got.N != tt.want {
			t.Errorf("%s %v = %v, want %v", tt.name, tt.attrs, got.N, tt.want)
		}
	}
	if got := reader.Get(t, "synod.acceptor.state_cache.bytes"); got.N <= 0 {
		t.Errorf("state_cache.bytes = %v, want > 0", got.N)
	}
}
