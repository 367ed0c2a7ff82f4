package pebblestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.opentelemetry.io/otel/attribute"

	"github.com/protosynod/protosynod/internal/limitfs"
	"github.com/protosynod/protosynod/internal/metrictest"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func enospc(op errorfs.Op) error {
	return &os.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
}

func state(c uint64, v []byte) synod.AcceptorState {
	b := synod.Ballot{Counter: c, Proposer: "p"}
	return synod.AcceptorState{Promised: b, Accepted: b, Value: v}
}

// storeWithin runs Store with a deadline and fails the test if it waited it
// out: storage failures must end calls, not block them.
func storeWithin(t *testing.T, s *pebblestore.Store, key string, st synod.AcceptorState) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := s.Store(ctx, key, st)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Store(%q) blocked until its deadline: %v", key, err)
	}
	return err
}

func wantStorageErr(t *testing.T, err error, noSpace bool) {
	t.Helper()
	targets := []error{pebblestore.ErrFailed, synod.ErrStorage}
	if noSpace {
		targets = append(targets, pebblestore.ErrNoSpace, synod.ErrNoSpace)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("error %v does not match %v", err, target)
		}
	}
}

// TestWALWriteNoSpace: ENOSPC on a WAL write fails the store for good with
// an error naming the full disk, without a panic, for the caller and every
// later call; nothing acknowledged is lost after a crash and reopen. Before
// issue 15, Pebble's panic on the failed WAL write escaped recoverFatal.
func TestWALWriteNoSpace(t *testing.T) {
	base := vfs.NewCrashableMem()
	var full atomic.Bool
	fs := errorfs.Wrap(base, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if full.Load() && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt) && strings.HasSuffix(op.Path, ".log") {
			return enospc(op)
		}
		return nil
	}))
	reader := metrictest.New()
	s, err := pebblestore.Open("db", pebblestore.WithFS(fs), pebblestore.WithMeterProvider(reader.Provider))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store(t.Context(), "acked", state(1, []byte("v"))); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = storeWithin(t, s, fmt.Sprint("k", i), state(2, []byte("w"))) })
	}
	wg.Wait()
	for _, err := range errs {
		wantStorageErr(t, err, true)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed() not closed after a failed WAL write")
	}
	full.Store(false)
	if _, err := s.Load(t.Context(), "acked"); !errors.Is(err, pebblestore.ErrFailed) {
		t.Errorf("Load after the failure: %v, want ErrFailed (only a restart recovers)", err)
	}
	if got := reader.Get(t, "synod.storage.failures", attribute.String("kind", "no_space")); got.N != 1 {
		t.Errorf("failures{kind=no_space} = %v, want 1", got.N)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close of the failed store: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close of a failed store did not return")
	}
	r, err := pebblestore.Open("db", pebblestore.WithFS(base.CrashClone(vfs.CrashCloneCfg{})))
	if err != nil {
		t.Fatalf("reopen after the failure: %v", err)
	}
	defer r.Close()
	if st, err := r.Load(t.Context(), "acked"); err != nil || string(st.Value) != "v" {
		t.Fatalf("acknowledged write after reopen: %+v, %v", st, err)
	}
}

// TestFlushNoSpaceFailsFast: when Pebble's memtable flush hits a full disk,
// writes used to block for ever in Pebble's write stall while Pebble retried
// the flush with no pause, logging each failure. Now the store fails at the
// first background error: every call ends at once with ErrFailed and
// ErrNoSpace, and Pebble's repeated errors are logged once per second.
func TestFlushNoSpaceFailsFast(t *testing.T) {
	var full atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if full.Load() && strings.HasSuffix(op.Path, ".sst") && (op.Kind == errorfs.OpCreate || op.Kind == errorfs.OpFileWrite) {
			return enospc(op)
		}
		return nil
	}))
	logs := &syncBuffer{}
	s, err := pebblestore.Open("db", pebblestore.WithFS(fs),
		pebblestore.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		pebblestore.WithPebbleOptions(func(o *pebble.Options) {
			o.MemTableSize = 256 << 10
			o.MemTableStopWritesThreshold = 2
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	full.Store(true)
	value := bytes.Repeat([]byte("x"), 16<<10)
	start := time.Now()
	var failed error
	for i := 0; i < 10_000 && failed == nil; i++ {
		failed = storeWithin(t, s, fmt.Sprint("k", i%64), state(uint64(i+1), value))
	}
	if failed == nil {
		t.Fatal("10,000 writes of 16 KiB succeeded with flushes failing")
	}
	wantStorageErr(t, failed, true)
	t.Logf("failed after %v: %v", time.Since(start), failed)
	for i := range 20 {
		wantStorageErr(t, storeWithin(t, s, fmt.Sprint("after", i), state(1, nil)), true)
	}
	time.Sleep(1500 * time.Millisecond) // Pebble keeps retrying the flush meanwhile
	if n := strings.Count(logs.String(), "component=pebble"); n > 12 {
		t.Errorf("%d Pebble log lines in 1.5s: not rate-limited\n%s", n, logs.String()[:2000])
	}
}

// TestOpenRefusesFullOrUnwritable: a data directory on a full disk or one
// that cannot be written is refused with a clear error, never a panic, and a
// full disk at any write during Open is an error too.
func TestOpenRefusesFullOrUnwritable(t *testing.T) {
	t.Run("full", func(t *testing.T) {
		fs := limitfs.New(vfs.NewMem(), "db", func() int64 { return 0 })
		_, err := pebblestore.Open("db", pebblestore.WithFS(fs))
		if !errors.Is(err, pebblestore.ErrNoSpace) || !errors.Is(err, synod.ErrNoSpace) || !strings.Contains(err.Error(), "refusing to start") {
			t.Fatalf("Open on a full disk: %v, want a refusal matching ErrNoSpace", err)
		}
		t.Log(err)
	})
	t.Run("below half the reserve", func(t *testing.T) {
		fs := limitfs.New(vfs.NewMem(), "db", func() int64 { return 8 << 20 })
		_, err := pebblestore.Open("db", pebblestore.WithFS(fs), pebblestore.WithSpaceReserve(32<<20))
		if !errors.Is(err, pebblestore.ErrNoSpace) {
			t.Fatalf("Open with 8 MiB free and a 32 MiB reserve: %v, want ErrNoSpace", err)
		}
		t.Log(err)
	})
	t.Run("unwritable", func(t *testing.T) {
		fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
			if op.Kind == errorfs.OpCreate {
				return &os.PathError{Op: "open", Path: op.Path, Err: syscall.EROFS}
			}
			return nil
		}))
		_, err := pebblestore.Open("db", pebblestore.WithFS(fs))
		if err == nil || !strings.Contains(err.Error(), "not writable") || !errors.Is(err, syscall.EROFS) {
			t.Fatalf("Open on a read-only filesystem: %v, want a refusal naming it", err)
		}
		t.Log(err)
	})
	t.Run("no space at every write", func(t *testing.T) {
		for k := 1; ; k++ {
			var n atomic.Int64
			fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && n.Add(1) == int64(k) {
					return enospc(op)
				}
				return nil
			}))
			s, err := pebblestore.Open("db", pebblestore.WithFS(fs), pebblestore.WithIdentity("c", "a1"))
			if err == nil {
				_ = s.Close()
				if n.Load() < int64(k) {
					t.Logf("Open survives a full disk at each of its %d writes", k-1)
					return
				}
				continue // the failed write was not Pebble's to see (a deferred cleanup, say)
			}
			if !errors.Is(err, synod.ErrStorage) && !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("write %d failed: Open returned %v, want a storage error", k, err)
			}
		}
	})
}

// TestSpaceReserve: below the reserve, new keys are refused with ErrNoSpace
// while existing ones are still written and read; below half of it every
// write is refused; with space freed, writes resume by themselves. Nothing
// refused reaches the disk, and the free space and refusals are metrics.
func TestSpaceReserve(t *testing.T) {
	var limit atomic.Int64
	limit.Store(-1)
	fs := limitfs.New(vfs.NewMem(), "db", limit.Load)
	reader := metrictest.New()
	const reserve = 4 << 20
	s, err := pebblestore.Open("db", pebblestore.WithFS(fs), pebblestore.WithSpaceReserve(reserve),
		pebblestore.WithMeterProvider(reader.Provider))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.Store(ctx, "old", state(1, []byte("v1"))); err != nil {
		t.Fatal(err)
	}
	setFree := func(free int64) {
		limit.Store(fs.Used() + free)
		time.Sleep(150 * time.Millisecond) // past the store's free-space reading
	}

	setFree(reserve - 1<<20) // below the reserve, above the floor
	if err := s.Store(ctx, "new", state(1, nil)); !errors.Is(err, pebblestore.ErrNoSpace) || !errors.Is(err, synod.ErrNoSpace) {
		t.Fatalf("new key below the reserve: %v, want ErrNoSpace", err)
	}
	if err := s.Store(ctx, "old", state(2, []byte("v2"))); err != nil {
		t.Fatalf("existing key below the reserve: %v", err)
	}
	// A batch refuses its new key only: the existing one is stored.
	err = s.StoreBatch(ctx, []pebblestore.KeyState{{Key: "new2", State: state(1, nil)}, {Key: "old", State: state(3, []byte("v3"))}})
	var be *synod.BatchError
	if !errors.As(err, &be) || len(be.Errs) != 2 || !errors.Is(be.Errs[0], pebblestore.ErrNoSpace) || be.Errs[1] != nil {
		t.Fatalf("batch of a new and an existing key below the reserve: %v, want a *synod.BatchError refusing the new key only", err)
	}
	if st, err := s.Load(ctx, "old"); err != nil || string(st.Value) != "v3" {
		t.Fatalf("existing key of a partly refused batch: %+v, %v; want v3", st, err)
	}
	if got := reader.Get(t, "synod.storage.disk.free"); got.Points != 1 || got.N >= reserve {
		t.Errorf("disk.free = %+v, want one point below %d", got, reserve)
	}

	setFree(reserve/2 - 1<<20) // below the floor
	if err := s.Store(ctx, "old", state(4, []byte("v4"))); !errors.Is(err, pebblestore.ErrNoSpace) {
		t.Fatalf("existing key below the floor: %v, want ErrNoSpace", err)
	}
	if err := s.StoreBatch(ctx, []pebblestore.KeyState{{Key: "old", State: state(4, []byte("v4"))}, {Key: "new3", State: state(1, nil)}}); !errors.Is(err, pebblestore.ErrNoSpace) || errors.As(err, &be) {
		t.Fatalf("batch below the floor: %v, want ErrNoSpace for the whole batch", err)
	}
	if st, err := s.Load(ctx, "old"); err != nil || string(st.Value) != "v3" {
		t.Fatalf("Load below the floor: %+v, %v; want v3", st, err)
	}
	for _, k := range []string{"new", "new2", "new3"} {
		if st, err := s.Load(ctx, k); err != nil || !st.Promised.IsZero() {
			t.Fatalf("refused key %s: %+v, %v; want nothing stored", k, st, err)
		}
	}
	if got := reader.Get(t, "synod.storage.refused", attribute.String("reason", "reserve")); got.N != 2 {
		t.Errorf("refused{reason=reserve} = %v, want 2", got.N)
	}
	if got := reader.Get(t, "synod.storage.refused", attribute.String("reason", "floor")); got.N != 3 {
		t.Errorf("refused{reason=floor} = %v, want 3 (a Store and a batch of 2)", got.N)
	}

	limit.Store(-1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Store(ctx, "new", state(1, nil))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume after the space came back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-s.Failed():
		t.Fatalf("store failed: %v", s.Err())
	default:
	}
}

// TestStoreOnHungDisk: a Store stuck in Pebble on a hung disk returns when
// its ctx ends (shutdown is bounded), and the store fails, because the
// abandoned write could still land after a later write of the same key.
func TestStoreOnHungDisk(t *testing.T) {
	var limit atomic.Int64
	limit.Store(-1)
	s, err := pebblestore.Open("db", pebblestore.WithFS(limitfs.New(vfs.NewMem(), "db", limit.Load)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { limit.Store(-1); _ = s.Close() }()
	limit.Store(limitfs.Stall)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Store(ctx, "k", state(1, nil))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, pebblestore.ErrFailed) {
		t.Fatalf("Store on a hung disk: %v, want DeadlineExceeded and ErrFailed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Store took %v to give up", d)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("store not failed after an abandoned commit")
	}
	limit.Store(-1)
	if err := s.Store(t.Context(), "k", state(2, nil)); !errors.Is(err, pebblestore.ErrFailed) {
		t.Fatalf("Store after an abandoned commit: %v, want ErrFailed", err)
	}
}
