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

func bal(n uint64, p string) synod.Ballot { return synod.Ballot{Counter: n, Proposer: p} }

var (
	b1 = bal(1, "p")
	b2 = bal(2, "p")
	b3 = bal(3, "p")
	b4 = bal(4, "p")
	b5 = bal(5, "p")
)

// Paper: §2.1 "An acceptor returns a conflict if it already saw a greater
// ballot number. Otherwise it persists the ballot number as a promise and
// returns a confirmation either with an empty value (if it hasn't accepted any
// value yet) or with a tuple of an accepted value and its ballot number."
func TestAcceptorPrepareRule(t *testing.T) {
	tests := []struct {
		name        string
		st          synod.AcceptorState
		b           synod.Ballot
		wantOK      bool
		wantSeen    synod.Ballot
		wantState   synod.AcceptorState
		wantChanged bool
	}{
		{
			name:        "empty register promises",
			b:           b1,
			wantOK:      true,
			wantState:   synod.AcceptorState{Promised: b1},
			wantChanged: true,
		},
		{
			name:        "greater ballot replaces the promise and returns the accepted value",
			st:          synod.AcceptorState{Promised: b2, Accepted: b2, Value: []byte("v")},
			b:           b3,
			wantOK:      true,
			wantState:   synod.AcceptorState{Promised: b3, Accepted: b2, Value: []byte("v")},
			wantChanged: true,
		},
		{
			name:      "equal ballot is a duplicate, answered again without a write",
			st:        synod.AcceptorState{Promised: b2, Accepted: b1, Value: []byte("v")},
			b:         b2,
			wantOK:    true,
			wantState: synod.AcceptorState{Promised: b2, Accepted: b1, Value: []byte("v")},
		},
		{
			name:      "smaller than the promise is refused",
			st:        synod.AcceptorState{Promised: b3},
			b:         b2,
			wantSeen:  b3,
			wantState: synod.AcceptorState{Promised: b3},
		},
		{
			name:      "smaller than the accepted ballot is refused",
			st:        synod.AcceptorState{Promised: b3, Accepted: b3, Value: []byte("v")},
			b:         b2,
			wantSeen:  b3,
			wantState: synod.AcceptorState{Promised: b3, Accepted: b3, Value: []byte("v")},
		},
		{
			name:      "refusal carries max(promised, accepted) when accepted is greater",
			st:        synod.AcceptorState{Promised: b2, Accepted: b5, Value: []byte("v")},
			b:         b3,
			wantSeen:  b5,
			wantState: synod.AcceptorState{Promised: b2, Accepted: b5, Value: []byte("v")},
		},
		{
			name:      "refusal carries max(promised, accepted) when promised is greater",
			st:        synod.AcceptorState{Promised: b5, Accepted: b2, Value: []byte("v")},
			b:         b3,
			wantSeen:  b5,
			wantState: synod.AcceptorState{Promised: b5, Accepted: b2, Value: []byte("v")},
		},
		{
			name:      "same counter, smaller proposer ID is refused",
			st:        synod.AcceptorState{Promised: bal(2, "q")},
			b:         bal(2, "p"),
			wantSeen:  bal(2, "q"),
			wantState: synod.AcceptorState{Promised: bal(2, "q")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := synod.PrepareRequest{Key: "k", Ballot: tt.b}
			st, rep, changed := tt.st.Prepare("a0", req)
			if !reflect.DeepEqual(st, tt.wantState) {
				t.Errorf("state = %+v, want %+v", st, tt.wantState)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			want := synod.PrepareReply{From: "a0", Key: "k", Ballot: tt.b, OK: tt.wantOK, Seen: tt.wantSeen}
			if tt.wantOK {
				want.Accepted, want.Value = tt.st.Accepted, tt.st.Value
			}
			if !reflect.DeepEqual(rep, want) {
				t.Errorf("reply = %+v, want %+v", rep, want)
			}
		})
	}
}

// Paper: §2.1 "An acceptor returns a conflict if it already saw a greater
// ballot number. Otherwise it marks the received tuple as the accepted value
// and returns a confirmation." §2.2.1: accepting with a next ballot also
// promises it, which lets the next change skip the prepare phase.
func TestAcceptorAcceptRule(t *testing.T) {
	v, w := []byte("v"), []byte("w")
	tests := []struct {
		name        string
		st          synod.AcceptorState
		req         synod.AcceptRequest
		wantOK      bool
		wantSeen    synod.Ballot
		wantState   synod.AcceptorState
		wantChanged bool
	}{
		{
			name:        "accept after its own promise, no next: promise stays at the ballot",
			st:          synod.AcceptorState{Promised: b2},
			req:         synod.AcceptRequest{Key: "k", Ballot: b2, Value: v},
			wantOK:      true,
			wantState:   synod.AcceptorState{Promised: b2, Accepted: b2, Value: v},
			wantChanged: true,
		},
		{
			name:        "accept promises next",
			st:          synod.AcceptorState{Promised: b2},
			req:         synod.AcceptRequest{Key: "k", Ballot: b2, Value: v, Next: b3},
			wantOK:      true,
			wantState:   synod.AcceptorState{Promised: b3, Accepted: b2, Value: v},
			wantChanged: true,
		},
		{
			name:        "accept without a prepare, above everything seen (the fast path at another acceptor)",
			st:          synod.AcceptorState{Promised: b1, Accepted: b1, Value: v},
			req:         synod.AcceptRequest{Key: "k", Ballot: b3, Value: w, Next: b4},
			wantOK:      true,
			wantState:   synod.AcceptorState{Promised: b4, Accepted: b3, Value: w},
			wantChanged: true,
		},
		{
			name:      "accept after a higher promise is refused",
			st:        synod.AcceptorState{Promised: b3, Accepted: b1, Value: v},
			req:       synod.AcceptRequest{Key: "k", Ballot: b2, Value: w, Next: b4},
			wantSeen:  b3,
			wantState: synod.AcceptorState{Promised: b3, Accepted: b1, Value: v},
		},
		{
			name:      "accept below the accepted ballot is refused",
			st:        synod.AcceptorState{Promised: b3, Accepted: b3, Value: v},
			req:       synod.AcceptRequest{Key: "k", Ballot: b2, Value: w},
			wantSeen:  b3,
			wantState: synod.AcceptorState{Promised: b3, Accepted: b3, Value: v},
		},
		{
			name:      "duplicate accept after its own next promise is answered again, unchanged",
			st:        synod.AcceptorState{Promised: b3, Accepted: b2, Value: v},
			req:       synod.AcceptRequest{Key: "k", Ballot: b2, Value: v, Next: b3},
			wantOK:    true,
			wantState: synod.AcceptorState{Promised: b3, Accepted: b2, Value: v},
		},
		{
			name:      "duplicate accept after a later promise is answered again, promise kept",
			st:        synod.AcceptorState{Promised: b5, Accepted: b2, Value: v},
			req:       synod.AcceptRequest{Key: "k", Ballot: b2, Value: v, Next: b3},
			wantOK:    true,
			wantState: synod.AcceptorState{Promised: b5, Accepted: b2, Value: v},
		},
		{
			name:      "duplicate accept without next is answered again",
			st:        synod.AcceptorState{Promised: b2, Accepted: b2, Value: v},
			req:       synod.AcceptRequest{Key: "k", Ballot: b2, Value: v},
			wantOK:    true,
			wantState: synod.AcceptorState{Promised: b2, Accepted: b2, Value: v},
		},
		{
			name:        "next below a later promise does not lower it",
			st:          synod.AcceptorState{Promised: b2},
			req:         synod.AcceptRequest{Key: "k", Ballot: b3, Value: v},
			wantOK:      true,
			wantState:   synod.AcceptorState{Promised: b3, Accepted: b3, Value: v},
			wantChanged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, rep, changed := tt.st.Accept("a0", tt.req)
			if !reflect.DeepEqual(st, tt.wantState) {
				t.Errorf("state = %+v, want %+v", st, tt.wantState)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			want := synod.AcceptReply{From: "a0", Key: "k", Ballot: tt.req.Ballot, OK: tt.wantOK, Seen: tt.wantSeen}
			if !reflect.DeepEqual(rep, want) {
				t.Errorf("reply = %+v, want %+v", rep, want)
			}
		})
	}
}

// Paper: §2.1 — promises never go backwards. Whatever sequence of requests an
// acceptor sees, its promised and accepted ballots only grow, an accepted
// ballot never exceeds the promise, and an accepted value changes only with the
// accepted ballot.
func TestAcceptorStateMonotonic(t *testing.T) {
	ballots := []synod.Ballot{b1, b2, b3, b4, b5, bal(2, "q"), bal(4, "q")}
	var st synod.AcceptorState
	for i := range 2000 {
		b := ballots[(i*7+i/3)%len(ballots)]
		next := ballots[(i*5+1)%len(ballots)]
		var nst synod.AcceptorState
		if i%3 == 0 {
			nst, _, _ = st.Prepare("a", synod.PrepareRequest{Key: "k", Ballot: b})
		} else {
			if !b.Less(next) {
				next = synod.Ballot{}
			}
			nst, _, _ = st.Accept("a", synod.AcceptRequest{Key: "k", Ballot: b, Value: fmt.Appendf(nil, "%v", b), Next: next})
		}
		if nst.Promised.Less(st.Promised) || nst.Accepted.Less(st.Accepted) {
			t.Fatalf("step %d: %+v went back to %+v", i, st, nst)
		}
		if nst.Promised.Less(nst.Accepted) {
			t.Fatalf("step %d: accepted %v above promise %v", i, nst.Accepted, nst.Promised)
		}
		if nst.Accepted == st.Accepted && string(nst.Value) != string(st.Value) {
			t.Fatalf("step %d: value changed at the same ballot %v", i, st.Accepted)
		}
		st = nst
	}
}

// The zero ballot always loses: it orders below every valid ballot, no
// acceptor that has seen anything accepts it, and requests carrying it are
// malformed.
func TestZeroBallotAlwaysLoses(t *testing.T) {
	var zero synod.Ballot
	for _, b := range []synod.Ballot{b1, bal(1, ""), bal(0, "p"), bal(^uint64(0), "z")} {
		if !b.IsZero() && !zero.Less(b) {
			t.Errorf("zero.Less(%v) = false", b)
		}
	}
	st := synod.AcceptorState{Promised: b1}
	if _, rep, _ := st.Prepare("a", synod.PrepareRequest{Key: "k"}); rep.OK {
		t.Errorf("prepare with the zero ballot promised after %v", b1)
	}
	if _, rep, _ := st.Accept("a", synod.AcceptRequest{Key: "k"}); rep.OK {
		t.Errorf("accept with the zero ballot accepted after %v", b1)
	}
	a := synod.NewAcceptor("a", synod.NewMemoryStorage())
	if _, err := a.Prepare(context.Background(), synod.PrepareRequest{Key: "k"}); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Errorf("Acceptor.Prepare(zero ballot) = %v, want ErrInvalidRequest", err)
	}
	if _, err := a.Accept(context.Background(), synod.AcceptRequest{Key: "k", Value: []byte("v")}); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Errorf("Acceptor.Accept(zero ballot) = %v, want ErrInvalidRequest", err)
	}
}

func TestRequestValidate(t *testing.T) {
	prepares := []struct {
		name string
		req  synod.PrepareRequest
		ok   bool
	}{
		{"valid", synod.PrepareRequest{Key: "k", Ballot: b1}, true},
		{"empty key", synod.PrepareRequest{Ballot: b1}, false},
		{"zero ballot", synod.PrepareRequest{Key: "k"}, false},
		{"zero counter", synod.PrepareRequest{Key: "k", Ballot: bal(0, "p")}, false},
		{"empty proposer", synod.PrepareRequest{Key: "k", Ballot: bal(1, "")}, false},
	}
	for _, tt := range prepares {
		t.Run("prepare/"+tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if got := err == nil; got != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, synod.ErrInvalidRequest) {
				t.Errorf("error %v does not match ErrInvalidRequest", err)
			}
		})
	}
	accepts := []struct {
		name string
		req  synod.AcceptRequest
		ok   bool
	}{
		{"valid without next", synod.AcceptRequest{Key: "k", Ballot: b1}, true},
		{"valid with next", synod.AcceptRequest{Key: "k", Ballot: b1, Next: b2}, true},
		{"empty key", synod.AcceptRequest{Ballot: b1}, false},
		{"zero ballot", synod.AcceptRequest{Key: "k", Next: b2}, false},
		{"invalid ballot", synod.AcceptRequest{Key: "k", Ballot: bal(0, "p")}, false},
		{"next equal to ballot", synod.AcceptRequest{Key: "k", Ballot: b2, Next: b2}, false},
		{"next below ballot", synod.AcceptRequest{Key: "k", Ballot: b2, Next: b1}, false},
		{"next without proposer", synod.AcceptRequest{Key: "k", Ballot: b1, Next: bal(2, "")}, false},
	}
	for _, tt := range accepts {
		t.Run("accept/"+tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if got := err == nil; got != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, synod.ErrInvalidRequest) {
				t.Errorf("error %v does not match ErrInvalidRequest", err)
			}
		})
	}
}

// recordingStorage wraps a MemoryStorage, counts Stores and can fail them.
type recordingStorage struct {
	*synod.MemoryStorage
	mu     sync.Mutex
	stores int
	fail   error
}

func (s *recordingStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	s.mu.Lock()
	s.stores++
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

// The acceptor persists before it replies: a failed Store yields an error and
// no reply, and leaves the stored state as it was; a request that changes
// nothing is answered without a write.
func TestAcceptorPersistsBeforeReply(t *testing.T) {
	ctx := context.Background()
	store := &recordingStorage{MemoryStorage: synod.NewMemoryStorage()}
	a := synod.NewAcceptor("a0", store)

	rep, err := a.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: b1})
	if err != nil || !rep.OK {
		t.Fatalf("prepare: %+v, %v", rep, err)
	}
	if _, err := a.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: b1}); err != nil {
		t.Fatal(err)
	}
	if store.stores != 1 {
		t.Errorf("stores after a prepare and its duplicate = %d, want 1", store.stores)
	}

	boom := errors.New("disk on fire")
	store.fail = boom
	arep, err := a.Accept(ctx, synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("v"), Next: b2})
	if !errors.Is(err, boom) {
		t.Fatalf("accept with failing storage: err = %v, want %v", err, boom)
	}
	if arep.OK {
		t.Errorf("accept with failing storage replied OK: %+v", arep)
	}
	st, err := a.State(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if want := (synod.AcceptorState{Promised: b1}); !reflect.DeepEqual(st, want) {
		t.Errorf("state after failed store = %+v, want %+v", st, want)
	}

	store.fail = nil
	if arep, err = a.Accept(ctx, synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("v"), Next: b2}); err != nil || !arep.OK {
		t.Fatalf("accept: %+v, %v", arep, err)
	}
	// A restarted acceptor on the same storage answers from what was stored.
	b := synod.NewAcceptor("a0", store)
	prep, err := b.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: b1})
	if err != nil || prep.OK || prep.Seen != b2 {
		t.Errorf("restarted acceptor: prepare %v = %+v, %v; want refused, seen %v", b1, prep, err, b2)
	}
}

// blockingStorage blocks every Store until released, to observe concurrency.
type blockingStorage struct {
	*synod.MemoryStorage
	entered chan string
	release chan struct{}
}

func (s *blockingStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	s.entered <- key
	<-s.release
	return s.MemoryStorage.Store(ctx, key, st)
}

// Different keys are stored concurrently (so a storage can group-commit them);
// one key's requests are serialized.
func TestAcceptorConcurrency(t *testing.T) {
	store := &blockingStorage{MemoryStorage: synod.NewMemoryStorage(), entered: make(chan string, 4), release: make(chan struct{})}
	a := synod.NewAcceptor("a0", store)
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, req := range []synod.PrepareRequest{{Key: "x", Ballot: b1}, {Key: "y", Ballot: b1}, {Key: "x", Ballot: b2}} {
		wg.Go(func() {
			if _, err := a.Prepare(ctx, req); err != nil {
				t.Error(err)
			}
		})
	}
	timeout := time.After(10 * time.Second)
	got := map[string]int{}
	for range 2 {
		select {
		case k := <-store.entered:
			got[k]++
		case <-timeout:
			t.Fatal("two keys did not reach Store concurrently")
		}
	}
	if got["x"] != 1 || got["y"] != 1 {
		t.Fatalf("concurrent stores = %v, want one for x and one for y", got)
	}
	select {
	case k := <-store.entered:
		t.Fatalf("a second store of %q ran while the first was in progress", k)
	case <-time.After(20 * time.Millisecond):
	}
	close(store.release)
	wg.Wait()
	if st, _ := a.State(ctx, "x"); st.Promised != b2 {
		t.Errorf("x promised %v, want %v", st.Promised, b2)
	}
}
