package synod_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// errNoSpaceReply is what a transport delivers for an acceptor out of space.
var errNoSpaceReply = fmt.Errorf("acceptor replied 507: %w", synod.ErrNoSpace)

func TestErrNoSpaceMatchesErrStorage(t *testing.T) {
	if !errors.Is(synod.ErrNoSpace, synod.ErrStorage) {
		t.Fatal("ErrNoSpace does not match ErrStorage")
	}
	if errors.Is(synod.ErrStorage, synod.ErrNoSpace) {
		t.Fatal("ErrStorage matches ErrNoSpace")
	}
}

// TestProposalPrepareStorageFailures: a reply with a storage error is neither
// a promise nor a refusal; when such failures leave too few acceptors for a
// prepare quorum, the proposal ends at once with ErrStorage.
func TestProposalPrepareStorageFailures(t *testing.T) {
	tests := []struct {
		name       string
		replies    func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply
		wantStatus synod.Status
		wantErr    []error // errors.Is targets of Result's error
		notErr     []error
	}{{
		name: "two of three failed: storage",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			return []synod.PrepareReply{failedPrepare(pr, "a0"), failedPrepare(pr, "a1")}
		},
		wantStatus: synod.StatusDone,
		wantErr:    []error{synod.ErrStorage, synod.ErrNoSpace},
		notErr:     []error{synod.ErrIndeterminate, synod.ErrConflict},
	}, {
		name: "one failed, two promised: apply",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			return append([]synod.PrepareReply{failedPrepare(pr, "a0")}, c.prepare(t, pr, "a1", "a2")...)
		},
		wantStatus: synod.StatusApply,
	}, {
		name: "one failed, one refused: retry can win the healthy ones",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			rep := c.prepare(t, pr, "a1")[0]
			rep.OK, rep.Seen = false, synod.Ballot{Counter: 99, Proposer: "other"}
			return []synod.PrepareReply{failedPrepare(pr, "a0"), rep}
		},
		wantStatus: synod.StatusRefused,
	}, {
		name: "duplicate failure counts once",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			return []synod.PrepareReply{failedPrepare(pr, "a0"), failedPrepare(pr, "a0")}
		},
		wantStatus: synod.StatusPreparing,
	}, {
		name: "other errors are ignored",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			other := errors.New("stale epoch")
			return []synod.PrepareReply{
				{From: "a0", Key: pr.Key(), Ballot: pr.Ballot(), Err: other},
				{From: "a1", Key: pr.Key(), Ballot: pr.Ballot(), Err: other},
			}
		},
		wantStatus: synod.StatusPreparing,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newStepCluster(3)
			p := c.proposer(t, "p")
			pr := p.Begin("k", set("v"))
			feedPrepare(pr, tt.replies(t, c, pr))
			wantStatus(t, pr, tt.wantStatus)
			if tt.wantStatus != synod.StatusDone {
				return
			}
			_, err := pr.Result()
			checkIs(t, err, tt.wantErr, tt.notErr)
		})
	}
}

// TestProposalAcceptStorageFailures: a failed store may or may not have
// reached the disk, so storage failures in the accept phase make a change
// that carried its result indeterminate (and ErrStorage), while a write-back
// of an unchanged value fails with ErrStorage alone.
func TestProposalAcceptStorageFailures(t *testing.T) {
	tests := []struct {
		name    string
		f       synod.ChangeFunc
		wantErr []error
		notErr  []error
	}{
		{"result: indeterminate", set("v"), []error{synod.ErrStorage, synod.ErrIndeterminate, synod.ErrNoSpace}, nil},
		{"write-back: not applied", func([]byte) ([]byte, error) { return nil, errors.New("no") },
			[]error{synod.ErrStorage}, []error{synod.ErrIndeterminate}},
		{"read: not applied", nil, []error{synod.ErrStorage}, []error{synod.ErrIndeterminate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newStepCluster(3)
			p := c.proposer(t, "p")
			pr := p.Begin("k", tt.f)
			feedPrepare(pr, c.prepare(t, pr, "a0", "a1", "a2"))
			pr.Apply()
			wantStatus(t, pr, synod.StatusAccepting)
			reps := c.accept(t, pr, "a2")
			pr.OnAcceptReply(failedAccept(pr, "a0"))
			wantStatus(t, pr, synod.StatusAccepting)
			pr.OnAcceptReply(failedAccept(pr, "a1"))
			wantStatus(t, pr, synod.StatusDone)
			feedAccept(pr, reps) // late: changes nothing
			_, err := pr.Result()
			checkIs(t, err, tt.wantErr, tt.notErr)
			p.Complete(pr)
			if next := p.Begin("k", set("w")); next.Status() != synod.StatusPreparing {
				t.Fatalf("after a storage failure the next change is %v, want Preparing (no fast path)", next.Status())
			}
		})
	}
}

// TestProposalAcceptOneStorageFailure: one failure among three acceptors
// leaves a quorum: the change commits.
func TestProposalAcceptOneStorageFailure(t *testing.T) {
	c := newStepCluster(3)
	p := c.proposer(t, "p")
	pr := p.Begin("k", set("v"))
	feedPrepare(pr, c.prepare(t, pr, "a0", "a1", "a2"))
	pr.Apply()
	pr.OnAcceptReply(failedAccept(pr, "a0"))
	feedAccept(pr, c.accept(t, pr, "a1", "a2"))
	wantStatus(t, pr, synod.StatusDone)
	if v, err := pr.Result(); err != nil || string(v) != "v" {
		t.Fatalf("got %q, %v; want \"v\", nil", v, err)
	}
}

func failedPrepare(pr *synod.Proposal, from string) synod.PrepareReply {
	return synod.PrepareReply{From: from, Key: pr.Key(), Ballot: pr.Ballot(), Err: errNoSpaceReply}
}

func failedAccept(pr *synod.Proposal, from string) synod.AcceptReply {
	return synod.AcceptReply{From: from, Key: pr.Key(), Ballot: pr.Ballot(), Err: errNoSpaceReply}
}

func checkIs(t *testing.T, err error, want, not []error) {
	t.Helper()
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("error %v does not match %v", err, w)
		}
	}
	for _, n := range not {
		if errors.Is(err, n) {
			t.Errorf("error %v matches %v", err, n)
		}
	}
}

// failingStorage fails every Store with err while fail is set.
type failingStorage struct {
	*synod.MemoryStorage
	fail atomic.Bool
	err  error
}

func (s *failingStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	if s.fail.Load() {
		return s.err
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

// TestClientFailsFastOnStorage: with two of three acceptors' storage failing,
// a change ends long before its deadline with ErrStorage, and the message
// names the cause; with one failing, changes commit; once the storage works
// again, changes commit again.
func TestClientFailsFastOnStorage(t *testing.T) {
	var (
		acs    []*synod.Acceptor
		stores []*failingStorage
		cfg    synod.Config
	)
	for i := range 3 {
		id := fmt.Sprintf("a%d", i)
		s := &failingStorage{MemoryStorage: synod.NewMemoryStorage(), err: fmt.Errorf("disk: %w", synod.ErrNoSpace)}
		stores = append(stores, s)
		acs = append(acs, synod.NewAcceptor(id, s))
		cfg.Acceptors = append(cfg.Acceptors, id)
	}
	c := newTestClient(t, "p", cfg, synodtest.NewLocalTransport(acs...), synod.WithPhaseTimeout(time.Minute))
	change := func(v string) error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := c.Change(ctx, "k", set(v))
		return err
	}
	stores[0].fail.Store(true)
	if err := change("1"); err != nil {
		t.Fatalf("one acceptor failing: %v", err)
	}
	stores[1].fail.Store(true)
	for i := range 3 { // fast path first, then two-phase rounds
		start := time.Now()
		err := change(fmt.Sprint(i + 2))
		if !errors.Is(err, synod.ErrStorage) || !errors.Is(err, synod.ErrNoSpace) {
			t.Fatalf("change %d with two acceptors failing: got %v, want ErrStorage/ErrNoSpace", i, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("change %d took %v: it waited instead of failing fast", i, d)
		}
		t.Logf("change %d: %v", i, err)
	}
	stores[0].fail.Store(false)
	stores[1].fail.Store(false)
	if err := change("ok"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}
