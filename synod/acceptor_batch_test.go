package synod_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
)

// batchingStorage is a recordingStorage that is also a synod.BatchStorage.
type batchingStorage struct {
	recordingStorage
	batches [][]string // keys of each StoreBatch
	failKey string     // StoreBatch fails if it holds this key
	// refuse, if set, makes StoreBatch refuse the entries it returns an
	// error for, store the others and return a *synod.BatchError.
	refuse func(key string) error
}

func (s *batchingStorage) StoreBatch(ctx context.Context, entries []synod.KeyState) error {
	var keys []string
	for _, e := range entries {
		keys = append(keys, e.Key)
		if e.Key == s.failKey {
			return errors.New("batch failed")
		}
	}
	s.mu.Lock()
	s.batches = append(s.batches, keys)
	s.mu.Unlock()
	var refused *synod.BatchError
	for i, e := range entries {
		if s.refuse != nil {
			if err := s.refuse(e.Key); err != nil {
				if refused == nil {
					refused = &synod.BatchError{Errs: make([]error, len(entries))}
				}
				refused.Errs[i] = err
				continue
			}
		}
		if err := s.MemoryStorage.Store(ctx, e.Key, e.State); err != nil {
			return err
		}
	}
	if refused != nil {
		return refused
	}
	return nil
}

func prep(key string, b synod.Ballot) synod.BatchRequest {
	return synod.BatchRequest{Op: synod.OpPrepare, Prepare: synod.PrepareRequest{Key: key, Ballot: b}}
}

func acc(key string, b synod.Ballot, v string, next synod.Ballot) synod.BatchRequest {
	return synod.BatchRequest{Op: synod.OpAccept, Accept: synod.AcceptRequest{Key: key, Ballot: b, Value: []byte(v), Next: next}}
}

func read(key string) synod.BatchRequest {
	return synod.BatchRequest{Op: synod.OpRead, Read: synod.ReadRequest{Key: key}}
}

// TestApplyBatch: a batch's requests apply in order, as if handled one by
// one; its changes are stored with one StoreBatch; invalid requests fail
// alone.
func TestApplyBatch(t *testing.T) {
	ctx := context.Background()
	store := &batchingStorage{recordingStorage: recordingStorage{MemoryStorage: synod.NewMemoryStorage()}}
	a := synod.NewAcceptor("a0", store)
	reps := a.ApplyBatch(ctx, []synod.BatchRequest{
		prep("x", b1),
		acc("x", b1, "v1", b2), // sees the promise of b1 made just before
		read("x"),              // sees the accept
		prep("y", b3),
		prep("y", b2), // refused: y promised b3 above
		prep("", b1),  // invalid
		{Op: 9},       // unknown kind
		read("z"),
	})
	want := []synod.BatchReply{
		{Op: synod.OpPrepare, Prepare: synod.PrepareReply{From: "a0", Key: "x", Ballot: b1, OK: true}},
		{Op: synod.OpAccept, Accept: synod.AcceptReply{From: "a0", Key: "x", Ballot: b1, OK: true}},
		{Op: synod.OpRead, Read: synod.ReadReply{From: "a0", Key: "x", Promised: b2, Accepted: b1, Value: []byte("v1")}},
		{Op: synod.OpPrepare, Prepare: synod.PrepareReply{From: "a0", Key: "y", Ballot: b3, OK: true}},
		{Op: synod.OpPrepare, Prepare: synod.PrepareReply{From: "a0", Key: "y", Ballot: b2, Seen: b3}},
	}
	if !reflect.DeepEqual(reps[:len(want)], want) {
		t.Errorf("replies:\n got %+v\nwant %+v", reps[:len(want)], want)
	}
	for i := 5; i <= 6; i++ {
		if !errors.Is(reps[i].Err, synod.ErrInvalidRequest) {
			t.Errorf("reply %d: got %+v, want ErrInvalidRequest", i, reps[i])
		}
	}
	if r := reps[7]; r.Err != nil || r.Read.Key != "z" || !r.Read.Accepted.IsZero() {
		t.Errorf("read of an empty register: got %+v", r)
	}
	if store.stores != 0 || !reflect.DeepEqual(store.batches, [][]string{{"x", "y"}}) {
		t.Errorf("writes: %d Stores and batches %v, want none and [[x y]]", store.stores, store.batches)
	}
	// A batch that changes one key or nothing needs no StoreBatch.
	a.ApplyBatch(ctx, []synod.BatchRequest{read("x"), prep("y", b3)})
	a.ApplyBatch(ctx, []synod.BatchRequest{prep("x", b3)})
	if store.stores != 1 || len(store.batches) != 1 {
		t.Errorf("writes: %d Stores and %d batches, want 1 and 1", store.stores, len(store.batches))
	}
}

// TestApplyBatchStorageFailure: when the batch cannot be stored, every
// request of a changed key gets the error and no reply, and nothing changes;
// requests of unchanged keys keep their replies.
func TestApplyBatchStorageFailure(t *testing.T) {
	ctx := context.Background()
	store := &batchingStorage{recordingStorage: recordingStorage{MemoryStorage: synod.NewMemoryStorage()}, failKey: "y"}
	a := synod.NewAcceptor("a0", store)
	if _, err := a.Prepare(ctx, synod.PrepareRequest{Key: "z", Ballot: b2}); err != nil {
		t.Fatal(err)
	}
	reps := a.ApplyBatch(ctx, []synod.BatchRequest{prep("x", b1), read("z"), prep("y", b1), prep("z", b1), acc("x", b1, "v", synod.Ballot{})})
	for _, i := range []int{0, 2, 4} {
		if reps[i].Err == nil {
			t.Errorf("reply %d: got %+v, want the storage error", i, reps[i])
		}
	}
	if reps[1].Err != nil || reps[1].Read.Promised != b2 || reps[3].Err != nil || reps[3].Prepare.OK {
		t.Errorf("unchanged key z: got %+v and %+v, want its read and a refusal", reps[1], reps[3])
	}
	for _, k := range []string{"x", "y"} {
		if st, _ := a.State(ctx, k); !reflect.DeepEqual(st, synod.AcceptorState{}) {
			t.Errorf("%s after a failed batch: %+v", k, st)
		}
	}
}

// TestApplyBatchPartialStore: a StoreBatch that refuses some entries (a
// *synod.BatchError, as a store below its space reserve refuses new keys)
// fails only the requests of the refused keys; the requests of the stored
// keys, in the same batch and the same sync, are answered normally.
func TestApplyBatchPartialStore(t *testing.T) {
	ctx := context.Background()
	store := &batchingStorage{recordingStorage: recordingStorage{MemoryStorage: synod.NewMemoryStorage()}}
	a := synod.NewAcceptor("a0", store)
	if _, err := a.Accept(ctx, synod.AcceptRequest{Key: "old", Ballot: b1, Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	store.refuse = func(key string) error {
		if key == "old" {
			return nil
		}
		return fmt.Errorf("store %q: %w", key, synod.ErrNoSpace)
	}
	reps := a.ApplyBatch(ctx, []synod.BatchRequest{
		prep("new", b2),
		acc("old", b2, "v2", b3),
		read("old"),
		acc("new", b2, "n", synod.Ballot{}),
	})
	if r := reps[1]; r.Err != nil || !r.Accept.OK {
		t.Errorf("accept of the existing key: got %+v, want it accepted", r)
	}
	if r := reps[2]; r.Err != nil || string(r.Read.Value) != "v2" {
		t.Errorf("read of the existing key: got %+v, want v2", r)
	}
	for _, i := range []int{0, 3} {
		if r := reps[i]; !errors.Is(r.Err, synod.ErrNoSpace) || r.Prepare.OK || r.Accept.OK {
			t.Errorf("request %d of the new key: got %+v, want ErrNoSpace and no reply", i, r)
		}
	}
	if len(store.batches) != 1 {
		t.Errorf("StoreBatch calls: %v, want one", store.batches)
	}
	if st, _ := a.State(ctx, "old"); string(st.Value) != "v2" || st.Promised != b3 {
		t.Errorf("old after the batch: %+v, want v2 promised to %v", st, b3)
	}
	if st, _ := a.State(ctx, "new"); !reflect.DeepEqual(st, synod.AcceptorState{}) {
		t.Errorf("new after the batch: %+v, want nothing stored", st)
	}
}

// Batches lock all their keys, in key order: two batches over the same keys
// in opposite orders never deadlock, and a batch waits for a single request
// of one of its keys.
func TestApplyBatchLocking(t *testing.T) {
	store := &blockingStorage{MemoryStorage: synod.NewMemoryStorage(), entered: make(chan string, 8), release: make(chan struct{})}
	a := synod.NewAcceptor("a0", store)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() { a.Prepare(ctx, synod.PrepareRequest{Key: "y", Ballot: b1}) })
	if k := <-store.entered; k != "y" {
		t.Fatalf("entered %q", k)
	}
	wg.Go(func() { a.ApplyBatch(ctx, []synod.BatchRequest{prep("x", b2), prep("y", b2)}) })
	wg.Go(func() { a.ApplyBatch(ctx, []synod.BatchRequest{prep("y", b3), prep("x", b3)}) })
	select {
	case k := <-store.entered:
		t.Fatalf("a batch stored %q while y was held", k)
	case <-time.After(20 * time.Millisecond):
	}
	go func() {
		for range store.entered {
		}
	}()
	close(store.release)
	wg.Wait()
	close(store.entered)
	for _, k := range []string{"x", "y"} {
		if st, _ := a.State(ctx, k); st.Promised != b3 {
			t.Errorf("%s promised %v, want %v", k, st.Promised, b3)
		}
	}
}
