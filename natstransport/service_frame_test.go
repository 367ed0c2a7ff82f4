package natstransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// batchStorage is a MemoryStorage with StoreBatch that records the size of
// every write and can hold writes of chosen keys until released.
type batchStorage struct {
	*synod.MemoryStorage
	hold    func(key string) bool
	entered chan string
	release chan struct{}

	mu      sync.Mutex
	stores  int   // Store calls
	batches []int // entries of each StoreBatch call
}

func newBatchStorage(hold func(string) bool) *batchStorage {
	if hold == nil {
		hold = func(string) bool { return false }
	}
	return &batchStorage{MemoryStorage: synod.NewMemoryStorage(), hold: hold, entered: make(chan string, 100), release: make(chan struct{})}
}

var _ synod.BatchStorage = (*batchStorage)(nil)

func (s *batchStorage) wait(ctx context.Context, key string) error {
	if !s.hold(key) {
		return nil
	}
	s.entered <- key
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *batchStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	if err := s.wait(ctx, key); err != nil {
		return err
	}
	s.mu.Lock()
	s.stores++
	s.mu.Unlock()
	return s.MemoryStorage.Store(ctx, key, st)
}

func (s *batchStorage) StoreBatch(ctx context.Context, entries []synod.KeyState) error {
	for _, e := range entries {
		if err := s.wait(ctx, e.Key); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.batches = append(s.batches, len(entries))
	s.mu.Unlock()
	for _, e := range entries {
		if err := s.MemoryStorage.Store(ctx, e.Key, e.State); err != nil {
			return err
		}
	}
	return nil
}

func (s *batchStorage) writes() (stores int, batches []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stores, slices.Clone(s.batches)
}

// TestFrameOneBatchOneReply sends a frame of every kind of item, a refused
// one and an invalid one, and checks that the acceptor answers each in one
// reply frame and persists the frame's changes in one storage batch.
func TestFrameOneBatchOneReply(t *testing.T) {
	s := natstest.RunServer(t)
	store := newBatchStorage(nil)
	serveOne(t, natstest.Connect(t, s), "a1", store)
	nc := natstest.Connect(t, s)
	ctx := ctxTimeout(t, 10*time.Second)
	items := []RequestItem{
		prepareItem(10, "k1", b2),
		acceptItem(11, "k2", b1, []byte("v2"), b2),
		readItem(12, "k2"),
		prepareItem(13, "k1", b1), // below k1's promise of b2: refused
		prepareItem(14, "", b1),   // invalid
		readItem(15, "absent"),
	}
	items[0].Prepare.Epoch = 3
	subj, err := FrameSubject(DefaultPrefix, testCluster, "a1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := nc.RequestWithContext(ctx, subj, mustEncode(EncodeRequestFrame(items)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := DecodeReplyFrame(m.Data, DefaultLimits())
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	want := []ReplyItem{
		{Seq: 10, Op: synod.OpPrepare, Prepare: synod.PrepareReply{From: "a1", Key: "k1", Ballot: b2, OK: true}},
		{Seq: 11, Op: synod.OpAccept, Accept: synod.AcceptReply{From: "a1", Key: "k2", Ballot: b1, OK: true}},
		{Seq: 12, Op: synod.OpRead, Read: synod.ReadReply{From: "a1", Key: "k2", Promised: b2, Accepted: b1, Value: []byte("v2")}},
		{Seq: 13, Op: synod.OpPrepare, Prepare: synod.PrepareReply{From: "a1", Key: "k1", Ballot: b1, Seen: b2}},
	}
	if f.From != "a1" || len(f.Items) != len(items) {
		t.Fatalf("reply frame from %q with %d items, want a1 and %d (one frame for the whole batch)", f.From, len(f.Items), len(items))
	}
	for i, w := range want {
		if got := f.Items[i]; fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("item %d: got %+v, want %+v", i, got, w)
		}
	}
	if e := f.Items[4]; e.Seq != 14 || e.Op != itemError || e.Error.Code != CodeInvalidRequest {
		t.Errorf("invalid item: got %+v, want error %s", e, CodeInvalidRequest)
	}
	if r := f.Items[5]; r.Seq != 15 || r.Op != synod.OpRead || !r.Read.Accepted.IsZero() || r.Read.Value != nil {
		t.Errorf("read of an absent key: got %+v", r)
	}
	if stores, batches := store.writes(); stores != 0 || !slices.Equal(batches, []int{2}) {
		t.Errorf("writes: %d Store calls and StoreBatch calls of %v entries, want none and [2]", stores, batches)
	}
}

// TestFrameItemErrors: a storage failure fails the items of the keys it
// could not store, with an error item that matches ErrStorage through
// errors.Is; a read of another key is still answered.
func TestFrameItemErrors(t *testing.T) {
	s := natstest.RunServer(t)
	serveOne(t, natstest.Connect(t, s), "a1", failingStorage{synod.NewMemoryStorage()})
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)
	reps, err := tr.FrameAt(ctx, "a1", []RequestItem{prepareItem(1, "k", b1), readItem(2, "other")})
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].Op != itemError || reps[0].Error.Code != CodeStorage {
		t.Errorf("failed store: got %+v, want an error item with code %s", reps[0], CodeStorage)
	}
	if reps[1].Op != synod.OpRead || reps[1].Read.Key != "other" {
		t.Errorf("read beside a failed store: got %+v", reps[1])
	}
	// Through the Transport, the error arrives as the reply's Err.
	replies := make(chan synod.PrepareReply, 1)
	if err := tr.Prepare(ctx, []string{"a1"}, synod.PrepareRequest{Key: "k", Ballot: b2}, replies); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-replies:
		if !errors.Is(r.Err, ErrStorage) || !errors.Is(r.Err, ErrRemote) || r.From != "a1" || r.Key != "k" || r.Ballot != b2 {
			t.Errorf("reply: got %+v, want one from a1 for k at b2 whose Err matches ErrStorage", r)
		}
	case <-ctx.Done():
		t.Fatal("no reply")
	}
}

// TestFrameSplitsLargeReplies reads three values whose replies do not fit
// in one message: the acceptor sends several reply frames and the reader gets
// every value.
func TestFrameSplitsLargeReplies(t *testing.T) {
	s := natstest.RunServer(t)
	lim := WithLimits(Limits{MaxValue: 1000, MaxMessage: 1500})
	serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage(), lim)
	tr := newTransport(t, natstest.Connect(t, s), lim)
	ctx := ctxTimeout(t, 10*time.Second)
	var reads []RequestItem
	for i := range 3 {
		key := fmt.Sprintf("k%d", i)
		v := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		if _, err := tr.FrameAt(ctx, "a1", []RequestItem{acceptItem(1, key, b1, v, synod.Ballot{})}); err != nil {
			t.Fatal(err)
		}
		reads = append(reads, readItem(uint64(i+1), key))
	}
	reps, err := tr.FrameAt(ctx, "a1", reads)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reps {
		if r.Op != synod.OpRead || len(r.Read.Value) != 1000 || r.Read.Value[0] != byte('a'+i) {
			t.Errorf("read %d: got %v with %d bytes", i, r.Op, len(r.Read.Value))
		}
	}
}

// TestTransportBatchesWhileInFlight holds the first frame's write at the
// acceptor, sends more requests meanwhile, and checks that they all leave in
// the next frame, persisted by one storage batch.
func TestTransportBatchesWhileInFlight(t *testing.T) {
	s := natstest.RunServer(t)
	store := newBatchStorage(func(k string) bool { return k == "first" })
	serveOne(t, natstest.Connect(t, s), "a1", store)
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)
	replies := make(chan synod.PrepareReply, 100)
	if err := tr.Prepare(ctx, []string{"a1"}, synod.PrepareRequest{Key: "first", Ballot: b1}, replies); err != nil {
		t.Fatal(err)
	}
	<-store.entered // the first frame is in flight
	const n = 20
	for i := range n {
		if err := tr.Prepare(ctx, []string{"a1"}, synod.PrepareRequest{Key: fmt.Sprintf("k%d", i), Ballot: b1}, replies); err != nil {
			t.Fatal(err)
		}
	}
	if got := tr.Pending(); got != n+1 {
		t.Fatalf("pending: got %d, want %d", got, n+1)
	}
	close(store.release)
	if got := collect(replies, n+1, 5*time.Second); len(got) != n+1 {
		t.Fatalf("got %d replies, want %d", len(got), n+1)
	}
	if stores, batches := store.writes(); stores != 1 || !slices.Equal(batches, []int{n}) {
		t.Errorf("writes: %d Store calls and batches of %v, want 1 (the first frame) and [%d]", stores, batches, n)
	}
	waitFor(t, "requests to leave", func() bool { return tr.Pending() == 0 })
}

// TestTransportRead reads through the Transport from every acceptor.
func TestTransportRead(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 3, memoryStorage)
	c, tr := h.client("p", testSeed(t))
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := c.Change(ctx, "k", increment); err != nil {
		t.Fatal(err)
	}
	replies := make(chan synod.ReadReply, 3)
	if err := tr.Read(ctx, h.ids, synod.ReadRequest{Key: "k", Epoch: 1}, replies); err != nil {
		t.Fatal(err)
	}
	got := collect(replies, 3, 5*time.Second)
	oks := 0
	for _, r := range got {
		if r.Err == nil && r.Key == "k" && string(r.Value) == "1" && !r.Accepted.IsZero() {
			oks++
		}
	}
	// The change needed a quorum only; the third acceptor may have its
	// accept still on the way.
	if len(got) != 3 || oks < 2 {
		t.Errorf("reads: got %+v, want 3 replies, at least 2 with value 1", got)
	}
}

// v1Transport is a proposer of the previous release: it sends every request
// alone on the version-1 subjects.
type v1Transport struct{ tr *Transport }

func (v v1Transport) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	for _, id := range to {
		go func() {
			if rep, err := v.tr.PrepareAt(ctx, id, req); err == nil {
				select {
				case replies <- rep:
				default:
				}
			}
		}()
	}
	return nil
}

func (v v1Transport) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	for _, id := range to {
		go func() {
			if rep, err := v.tr.AcceptAt(ctx, id, req); err == nil {
				select {
				case replies <- rep:
				default:
				}
			}
		}()
	}
	return nil
}

// TestRollingUpgrade: proposers of the previous release (version-1 subjects)
// and new ones (frames) change one counter concurrently through the same
// acceptors; every acknowledged increment is there exactly once (dueling
// proposers may leave some indeterminate, which may or may not have landed).
func TestRollingUpgrade(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 3, memoryStorage)
	seed := testSeed(t)
	newC, _ := h.client("new", seed)
	oldTr := newTransport(t, natstest.Connect(t, s))
	oldC, err := synod.NewClient(synod.ProposerID("old", seed), h.config(), v1Transport{oldTr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 30*time.Second)
	const each = 15
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, maybe = map[string]int{}, 0
	)
	for name, c := range map[string]*synod.Client{"new": newC, "old": oldC} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := c.Change(ctx, "counter", increment)
				mu.Lock()
				switch {
				case err == nil:
					ok[name]++
				case errors.Is(err, synod.ErrIndeterminate):
					maybe++
				case !errors.Is(err, synod.ErrConflict):
					t.Errorf("%s change: %v", name, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	v, err := newC.Change(ctx, "counter", func(b []byte) ([]byte, error) { return b, nil })
	if err != nil {
		t.Fatal(err)
	}
	got, acked := counter(t, v), ok["new"]+ok["old"]
	if got < acked || got > acked+maybe || ok["new"] == 0 || ok["old"] == 0 {
		t.Errorf("counter %d after %v acknowledged and %d indeterminate increments", got, ok, maybe)
	}
}

// TestFrameStaleEpoch: an acceptor serving a newer configuration refuses an
// item of an older epoch with 412 and its configuration, which the Transport
// delivers as a *synod.StaleEpochError carrying it.
func TestFrameStaleEpoch(t *testing.T) {
	s := natstest.RunServer(t)
	_, acc := serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage())
	ctx := ctxTimeout(t, 10*time.Second)
	cfg := synod.Config{Acceptors: []string{"a1"}, Epoch: 2}
	if _, err := acc.Install(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	tr := newTransport(t, natstest.Connect(t, s))
	reps, err := tr.FrameAt(ctx, "a1", []RequestItem{prepareItem(1, "k", b1), readItem(2, "k")})
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].Error.Code != CodeStaleEpoch || reps[1].Error.Code != CodeStaleEpoch || len(reps[0].Error.Detail) == 0 {
		t.Fatalf("items of epoch 0: got %+v, want 412 with a detail", reps)
	}
	replies := make(chan synod.PrepareReply, 1)
	if err := tr.Prepare(ctx, []string{"a1"}, synod.PrepareRequest{Key: "k", Ballot: b1, Epoch: 1}, replies); err != nil {
		t.Fatal(err)
	}
	r := <-replies
	var se *synod.StaleEpochError
	if !errors.As(r.Err, &se) || se.Config.Epoch != 2 || se.Epoch != 1 || se.Acceptor != "a1" {
		t.Errorf("reply: got %+v, want a *synod.StaleEpochError from a1 for epoch 1 with the epoch-2 configuration", r)
	}
	// An item of the current epoch is served.
	reps, err = tr.FrameAt(ctx, "a1", []RequestItem{{Seq: 1, BatchRequest: synod.BatchRequest{Op: synod.OpPrepare, Prepare: synod.PrepareRequest{Key: "k", Ballot: synod.Ballot{Counter: 5, Proposer: "p"}, Epoch: 2}}}})
	if err != nil || reps[0].Op != synod.OpPrepare || !reps[0].Prepare.OK {
		t.Errorf("item of epoch 2: got %+v, %v", reps, err)
	}
}
