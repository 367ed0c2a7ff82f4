package natstransport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/limitfs"
	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

// switchStorage fails every Store with err while fail is set.
type switchStorage struct {
	*synod.MemoryStorage
	fail atomic.Bool
	err  error
}

func (s *switchStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	if s.fail.Load() {
		return s.err
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

func TestStorageErrorCodes(t *testing.T) {
	tests := []struct {
		err  error
		code string
		is   []error
	}{
		{fmt.Errorf("store: %w", synod.ErrNoSpace), CodeNoSpace, []error{ErrNoSpace, synod.ErrNoSpace, synod.ErrStorage}},
		{fmt.Errorf("store: %w: write: EIO", synod.ErrStorage), CodeStorage, []error{ErrStorage, synod.ErrStorage}},
		{errors.New("disk on fire"), CodeStorage, []error{ErrStorage, synod.ErrStorage}},
		{fmt.Errorf("load: %w", synod.ErrClosed), CodeStopping, []error{ErrStopping}},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.code {
			t.Errorf("errorCode(%v) = %s, want %s", tt.err, got, tt.code)
		}
		remote := &RemoteError{Acceptor: "a1", Code: tt.code}
		for _, target := range tt.is {
			if !errors.Is(remote, target) {
				t.Errorf("RemoteError %s does not match %v", tt.code, target)
			}
		}
	}
	if errors.Is(&RemoteError{Code: CodeStorage}, synod.ErrNoSpace) {
		t.Error("code 500 matches synod.ErrNoSpace")
	}
}

// TestChangeFailsFastOnStorageErrors runs three acceptors over NATS and fills
// two "disks" one after the other: with one full, changes commit; with two,
// every change fails at once with an error matching synod.ErrStorage and
// synod.ErrNoSpace, long before its deadline and its phase timeout; once the
// space is back, changes commit again. The acceptors count the failures and
// log one line per cause per second, not one per request.
func TestChangeFailsFastOnStorageErrors(t *testing.T) {
	s := natstest.RunServer(t)
	logs := &logBuffer{}
	var stores []*switchStorage
	var cfg synod.Config
	var svcs []*Service
	for i := range 3 {
		id := fmt.Sprintf("a%d", i)
		st := &switchStorage{MemoryStorage: synod.NewMemoryStorage(),
			err: fmt.Errorf("pebblestore: store: write 000004.log: no space left on device: %w", synod.ErrNoSpace)}
		stores = append(stores, st)
		svc, _ := serveOne(t, natstest.Connect(t, s), id, st, WithLogger(newTestLogger(logs)))
		svcs = append(svcs, svc)
		cfg.Acceptors = append(cfg.Acceptors, id)
	}
	tr := newTransport(t, natstest.Connect(t, s))
	c, err := synod.NewClient(synod.ProposerID("p", 1), cfg, tr,
		synod.WithPhaseTimeout(30*time.Second), synod.WithRand(rand.New(rand.NewPCG(1, 1))))
	if err != nil {
		t.Fatal(err)
	}
	change := func(key, v string) (time.Duration, error) {
		ctx := ctxTimeout(t, time.Minute)
		start := time.Now()
		_, err := c.Change(ctx, key, func([]byte) ([]byte, error) { return []byte(v), nil })
		return time.Since(start), err
	}
	stores[0].fail.Store(true)
	for i := range 5 {
		if _, err := change(fmt.Sprint("k", i), "1"); err != nil {
			t.Fatalf("one acceptor full: %v", err)
		}
	}
	stores[1].fail.Store(true)
	const n = 50
	var slowest time.Duration
	for i := range n {
		d, err := change(fmt.Sprint("k", i%10), "2")
		if !errors.Is(err, synod.ErrStorage) || !errors.Is(err, synod.ErrNoSpace) {
			t.Fatalf("two acceptors full: got %v, want ErrStorage and ErrNoSpace", err)
		}
		if !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("error %q does not name the cause", err)
		}
		slowest = max(slowest, d)
	}
	if slowest > 5*time.Second {
		t.Fatalf("slowest failed change took %v: it waited instead of failing fast", slowest)
	}
	t.Logf("slowest of %d failed changes: %v", n, slowest)
	if got := svcs[1].Stats(); got.NoSpace == 0 || got.StorageErrors < got.NoSpace {
		t.Errorf("stats of a full acceptor: %+v, want no_space > 0 counted in storage_errors", got)
	}
	if lines := strings.Count(logs.String(), "request failed"); lines > 8 {
		t.Errorf("%d request-failed lines for %d failures: not rate-limited", lines, n)
	}
	stores[0].fail.Store(false)
	stores[1].fail.Store(false)
	if _, err := change("k0", "3"); err != nil {
		t.Fatalf("after freeing the space: %v", err)
	}
}

// TestStorageErrorItems pins the version-2 mapping: an acceptor's storage
// errors become error items with codes 507 and 500, which the proposer side
// turns back into errors matching synod.ErrNoSpace / synod.ErrStorage.
func TestStorageErrorItems(t *testing.T) {
	tests := []struct {
		err     error
		code    string
		noSpace bool
	}{
		{fmt.Errorf("store: %w", synod.ErrNoSpace), CodeNoSpace, true},
		{fmt.Errorf("store: %w: EIO", synod.ErrStorage), CodeStorage, false},
	}
	for _, tt := range tests {
		item := itemErrorOf(tt.err)
		if item.Code != tt.code {
			t.Errorf("itemErrorOf(%v).Code = %s, want %s", tt.err, item.Code, tt.code)
		}
		back := itemErr("a1", 0, &item)
		if !errors.Is(back, synod.ErrStorage) || errors.Is(back, synod.ErrNoSpace) != tt.noSpace {
			t.Errorf("item %s back: %v; want ErrStorage, ErrNoSpace %v", item.Code, back, tt.noSpace)
		}
	}
}

// TestFrameBelowReserveServesExistingKeys: an acceptor on pebblestore below
// its space reserve answers one frame holding an accept of a key it holds, a
// prepare of a key it does not and a read: the accept is applied (in the
// frame's one storage batch), the prepare of the new key alone gets 507
// ErrNoSpace, the read sees the accepted value.
func TestFrameBelowReserveServesExistingKeys(t *testing.T) {
	s := natstest.RunServer(t)
	var limit atomic.Int64
	limit.Store(-1)
	fs := limitfs.New(vfs.NewMem(), "db", limit.Load)
	const reserve = 4 << 20
	store, err := pebblestore.Open("db", pebblestore.WithFS(fs), pebblestore.WithSpaceReserve(reserve))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	serveOne(t, natstest.Connect(t, s), "a1", store)
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)
	if reps, err := tr.FrameAt(ctx, "a1", []RequestItem{acceptItem(1, "old", b1, []byte("v1"), synod.Ballot{})}); err != nil || !reps[0].Accept.OK {
		t.Fatalf("first accept: %+v, %v", reps, err)
	}

	limit.Store(fs.Used() + reserve - 1<<20) // below the reserve, above its floor
	probes := 0
	waitFor(t, "the acceptor to refuse new keys", func() bool {
		probes++
		reps, err := tr.FrameAt(ctx, "a1", []RequestItem{prepareItem(1, fmt.Sprintf("probe%d", probes), b1)})
		return err == nil && reps[0].Error.Code == CodeNoSpace
	})
	reps, err := tr.FrameAt(ctx, "a1", []RequestItem{
		acceptItem(1, "old", b2, []byte("v2"), synod.Ballot{Counter: 3, Proposer: b2.Proposer}),
		prepareItem(2, "new", b2),
		readItem(3, "old"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := reps[0]; r.Op != synod.OpAccept || !r.Accept.OK {
		t.Errorf("accept of the existing key: got %+v, want it accepted", r)
	}
	if r := reps[1]; r.Op != itemError || r.Error.Code != CodeNoSpace {
		t.Errorf("prepare of a new key: got %+v, want error %s", r, CodeNoSpace)
	}
	if r := reps[2]; r.Op != synod.OpRead || string(r.Read.Value) != "v2" {
		t.Errorf("read of the existing key: got %+v, want v2", r)
	}
}

// TestChangeFailsFastWhenAcceptorsDown stops two of three acceptors: NATS
// answers "no responders" to their frames, the Transport delivers that as
// replies whose Err matches synod.ErrNotDelivered, and every change fails at
// once with ErrUnavailable (not ErrStorage; ErrIndeterminate only for a
// fast-path accept the third acceptor may have taken), long before its
// deadline and phase timeout. With the acceptors back, changes commit.
func TestChangeFailsFastWhenAcceptorsDown(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 3, memoryStorage)
	c, tr := h.client("p", testSeed(t), synod.WithPhaseTimeout(30*time.Second))
	change := func(key string) (time.Duration, error) {
		ctx := ctxTimeout(t, time.Minute)
		start := time.Now()
		_, err := c.Change(ctx, key, increment)
		return time.Since(start), err
	}
	for i := range 5 {
		if _, err := change(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}

	// A frame to an acceptor nobody serves comes back at once.
	replies := make(chan synod.PrepareReply, 1)
	ctx := ctxTimeout(t, 10*time.Second)
	if err := tr.Prepare(ctx, []string{"nobody"}, synod.PrepareRequest{Key: "k", Ballot: b1}, replies); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-replies:
		if !errors.Is(r.Err, synod.ErrNotDelivered) || !errors.Is(r.Err, nats.ErrNoResponders) || r.From != "nobody" || r.Key != "k" || r.Ballot != b1 {
			t.Fatalf("reply from an acceptor nobody serves: %+v, want Err matching synod.ErrNotDelivered and nats.ErrNoResponders", r)
		}
	case <-ctx.Done():
		t.Fatal("no reply for a frame nobody received")
	}

	h.stop(0)
	if _, err := change("k0"); err != nil {
		t.Fatalf("one acceptor down: %v", err)
	}
	h.stop(1)
	const n = 20
	var slowest time.Duration
	for i := range n {
		d, err := change(fmt.Sprint("k", i%5))
		if !errors.Is(err, synod.ErrUnavailable) || errors.Is(err, synod.ErrStorage) || !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("two acceptors down: got %v, want ErrUnavailable caused by no responders", err)
		}
		slowest = max(slowest, d)
		if i == 0 || i == n-1 {
			t.Logf("change %d: %v", i, err)
		}
	}
	if slowest > 5*time.Second {
		t.Fatalf("slowest failed change took %v: it waited instead of failing fast", slowest)
	}
	t.Logf("slowest of %d failed changes: %v", n, slowest)
	h.start(0)
	h.start(1)
	if _, err := change("k0"); err != nil {
		t.Fatalf("acceptors back: %v", err)
	}
}
