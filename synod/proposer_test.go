package synod_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/protosynod/protosynod/synod"
)

// stepCluster is a set of acceptors driven by hand with the pure rules: tests
// decide which acceptor gets which request and which replies come back.
type stepCluster struct {
	cfg synod.Config
	st  map[string]synod.AcceptorState
}

func newStepCluster(n int) *stepCluster {
	c := &stepCluster{st: map[string]synod.AcceptorState{}}
	for i := range n {
		c.cfg.Acceptors = append(c.cfg.Acceptors, fmt.Sprintf("a%d", i))
	}
	return c
}

func (c *stepCluster) proposer(t testing.TB, name string, opts ...synod.ProposerOption) *synod.Proposer {
	t.Helper()
	p, err := synod.NewProposer(synod.ProposerID(name, 1), c.cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// prepare delivers pr's prepare request to the acceptors ids and returns
// their replies without feeding them.
func (c *stepCluster) prepare(t testing.TB, pr *synod.Proposal, ids ...string) []synod.PrepareReply {
	t.Helper()
	req := pr.Request().Prepare
	if req == nil {
		t.Fatalf("prepare: proposal is %v, not preparing", pr.Status())
	}
	var reps []synod.PrepareReply
	for _, id := range ids {
		st, rep, _ := c.st[id].Prepare(id, *req)
		c.st[id] = st
		reps = append(reps, rep)
	}
	return reps
}

// accept delivers pr's accept request to the acceptors ids and returns their
// replies without feeding them.
func (c *stepCluster) accept(t testing.TB, pr *synod.Proposal, ids ...string) []synod.AcceptReply {
	t.Helper()
	req := pr.Request().Accept
	if req == nil {
		t.Fatalf("accept: proposal is %v, not accepting", pr.Status())
	}
	var reps []synod.AcceptReply
	for _, id := range ids {
		st, rep, _ := c.st[id].Accept(id, *req)
		c.st[id] = st
		reps = append(reps, rep)
	}
	return reps
}

// prepareUntilApply prepares pr at the acceptors ids, retrying with higher
// ballots until they promise.
func (c *stepCluster) prepareUntilApply(t testing.TB, p *synod.Proposer, pr *synod.Proposal, ids ...string) {
	t.Helper()
	for range 10 {
		feedPrepare(pr, c.prepare(t, pr, ids...))
		if pr.Status() != synod.StatusPreparing && pr.Status() != synod.StatusRefused {
			return
		}
		pr.Retry(p)
	}
	t.Fatalf("no promises from %v after 10 attempts", ids)
}

func feedPrepare(pr *synod.Proposal, reps []synod.PrepareReply) {
	for _, r := range reps {
		pr.OnPrepareReply(r)
	}
}

func feedAccept(pr *synod.Proposal, reps []synod.AcceptReply) {
	for _, r := range reps {
		pr.OnAcceptReply(r)
	}
}

// run drives pr to the end with every acceptor answering every request, and
// completes it in p.
func (c *stepCluster) run(t testing.TB, p *synod.Proposer, pr *synod.Proposal) ([]byte, error) {
	t.Helper()
	for range 100 {
		switch pr.Status() {
		case synod.StatusPreparing:
			feedPrepare(pr, c.prepare(t, pr, c.cfg.Acceptors...))
		case synod.StatusApply:
			pr.Apply()
		case synod.StatusAccepting:
			feedAccept(pr, c.accept(t, pr, c.cfg.Acceptors...))
		case synod.StatusRefused:
			pr.Retry(p)
		case synod.StatusDone:
			p.Complete(pr)
			return pr.Result()
		}
	}
	t.Fatal("proposal did not finish in 100 steps")
	return nil, nil
}

// countingIncr is a change function that increments a decimal counter and
// counts its runs.
type countingIncr struct{ runs int }

func (c *countingIncr) f(cur []byte) ([]byte, error) {
	c.runs++
	n, _ := strconv.Atoi(string(cur))
	return []byte(strconv.Itoa(n + 1)), nil
}

func set(v string) synod.ChangeFunc {
	return func([]byte) ([]byte, error) { return []byte(v), nil }
}

func wantStatus(t *testing.T, pr *synod.Proposal, want synod.Status) {
	t.Helper()
	if got := pr.Status(); got != want {
		t.Fatalf("status = %v, want %v", got, want)
	}
}

// Replies that do not belong to the current phase are ignored: from an
// unknown acceptor, for another key or ballot, duplicates, and replies of the
// other phase.
func TestProposalIgnoresStrayReplies(t *testing.T) {
	c := newStepCluster(3)
	p := c.proposer(t, "p")
	pr := p.Begin("k", set("v"))
	b := pr.Ballot()
	ok := func(from string) synod.PrepareReply {
		return synod.PrepareReply{From: from, Key: "k", Ballot: b, OK: true}
	}
	stray := []struct {
		name string
		rep  synod.PrepareReply
	}{
		{"unknown acceptor", ok("zz")},
		{"other key", synod.PrepareReply{From: "a1", Key: "other", Ballot: b, OK: true}},
		{"stale ballot", synod.PrepareReply{From: "a1", Key: "k", Ballot: bal(b.Counter-1+100, "old"), OK: true}},
		{"duplicate", ok("a0")},
	}
	pr.OnPrepareReply(ok("a0"))
	for _, s := range stray {
		pr.OnPrepareReply(s.rep)
		if pr.Status() != synod.StatusPreparing {
			t.Fatalf("after %s: status %v, want still Preparing (one real promise of two)", s.name, pr.Status())
		}
	}
	pr.OnAcceptReply(synod.AcceptReply{From: "a1", Key: "k", Ballot: b, OK: true})
	wantStatus(t, pr, synod.StatusPreparing)
	pr.OnPrepareReply(ok("a1"))
	wantStatus(t, pr, synod.StatusApply)

	pr.Apply()
	wantStatus(t, pr, synod.StatusAccepting)
	acc := func(from string) synod.AcceptReply {
		return synod.AcceptReply{From: from, Key: "k", Ballot: b, OK: true}
	}
	pr.OnPrepareReply(ok("a2"))
	pr.OnAcceptReply(acc("a0"))
	pr.OnAcceptReply(acc("a0"))
	pr.OnAcceptReply(acc("zz"))
	pr.OnAcceptReply(synod.AcceptReply{From: "a1", Key: "k", Ballot: bal(99, "p"), OK: true})
	wantStatus(t, pr, synod.StatusAccepting)
	pr.OnAcceptReply(acc("a2"))
	wantStatus(t, pr, synod.StatusDone)
	if v, err := pr.Result(); string(v) != "v" || err != nil {
		t.Errorf("Result() = %q, %v; want v, nil", v, err)
	}
}

// Paper: §2.1 "If a proposer receives confirmations from a majority of
// acceptors, it picks the value with the highest ballot number" — in whatever
// order the promises arrive.
func TestProposalAdoptsHighestAccepted(t *testing.T) {
	promises := func(b synod.Ballot) []synod.PrepareReply {
		return []synod.PrepareReply{
			{From: "a0", Key: "k", Ballot: b, OK: true, Accepted: bal(1, "x"), Value: []byte("old")},
			{From: "a1", Key: "k", Ballot: b, OK: true, Accepted: bal(3, "y"), Value: []byte("new")},
			{From: "a2", Key: "k", Ballot: b, OK: true},
			{From: "a3", Key: "k", Ballot: b, OK: true, Accepted: bal(3, "x"), Value: []byte("mid")},
		}
	}
	orders := [][]int{{0, 1, 2}, {2, 1, 0}, {1, 3, 0}, {3, 0, 1}, {0, 2, 3, 1}}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			c := newStepCluster(5)
			p := c.proposer(t, "p")
			var got []byte
			pr := p.Begin("k", func(cur []byte) ([]byte, error) { got = slices.Clone(cur); return []byte("z"), nil })
			reps := promises(pr.Ballot())
			for _, i := range order {
				pr.OnPrepareReply(reps[i])
			}
			pr.Apply()
			want := "old"
			for _, i := range order[:3] {
				if i == 1 {
					want = "new"
					break
				}
				if i == 3 {
					want = "mid"
				}
			}
			if string(got) != want {
				t.Errorf("change function saw %q, want %q", got, want)
			}
		})
	}
}

// A change function's error leaves the register unchanged: the current value
// is written back through a quorum and the error is returned as it was.
func TestProposalChangeErrorWritesBack(t *testing.T) {
	c := newStepCluster(3)
	p := c.proposer(t, "p")
	if _, err := c.run(t, p, p.Begin("k", set("v1"))); err != nil {
		t.Fatal(err)
	}
	errNo := errors.New("insufficient funds")
	pr := p.Begin("k", func([]byte) ([]byte, error) { return []byte("ignored"), errNo })
	v, err := c.run(t, p, pr)
	if err != errNo || string(v) != "v1" {
		t.Fatalf("Result() = %q, %v; want v1 and the change function's own error", v, err)
	}
	for id, st := range c.st {
		if string(st.Value) != "v1" || st.Accepted != pr.Ballot() {
			t.Errorf("%s holds %q at %v; want v1 written back at %v", id, st.Value, st.Accepted, pr.Ballot())
		}
	}
}

// Paper: §2.2.1 one-round-trip optimisation: after a commit whose accept
// quorum also promised the next ballot, the proposer's next change of the key
// starts at StatusApply and uses that ballot.
func TestProposalFastPath(t *testing.T) {
	c := newStepCluster(3)
	p := c.proposer(t, "p")
	first := p.Begin("k", set("v1"))
	if _, err := c.run(t, p, first); err != nil {
		t.Fatal(err)
	}
	next := c.st["a0"].Promised
	if !first.Ballot().Less(next) {
		t.Fatalf("accept promised %v, want a ballot above %v", next, first.Ballot())
	}
	var saw []byte
	pr := p.Begin("k", func(cur []byte) ([]byte, error) { saw = slices.Clone(cur); return []byte("v2"), nil })
	wantStatus(t, pr, synod.StatusApply)
	if pr.Ballot() != next {
		t.Errorf("fast-path ballot %v, want the promised %v", pr.Ballot(), next)
	}
	pr.Apply()
	if string(saw) != "v1" {
		t.Errorf("change function saw %q, want the cached v1", saw)
	}
	feedAccept(pr, c.accept(t, pr, "a0", "a1"))
	wantStatus(t, pr, synod.StatusDone)
	p.Complete(pr)
	// Only two acceptors promised the next ballot: still a prepare quorum.
	if got := p.Begin("k", nil).Status(); got != synod.StatusApply {
		t.Errorf("after a commit by a majority: status %v, want Apply", got)
	}

	t.Run("disabled", func(t *testing.T) {
		c := newStepCluster(3)
		p := c.proposer(t, "p", synod.WithFastPath(false))
		if _, err := c.run(t, p, p.Begin("k", set("v1"))); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, p.Begin("k", nil), synod.StatusPreparing)
	})
	t.Run("forgotten", func(t *testing.T) {
		c := newStepCluster(3)
		p := c.proposer(t, "p")
		if _, err := c.run(t, p, p.Begin("k", set("v1"))); err != nil {
			t.Fatal(err)
		}
		p.Forget("k")
		wantStatus(t, p.Begin("k", nil), synod.StatusPreparing)
	})
	t.Run("entry used once", func(t *testing.T) {
		c := newStepCluster(3)
		p := c.proposer(t, "p")
		if _, err := c.run(t, p, p.Begin("k", set("v1"))); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, p.Begin("k", nil), synod.StatusApply)
		wantStatus(t, p.Begin("k", nil), synod.StatusPreparing)
	})
	t.Run("accept quorum smaller than the prepare quorum", func(t *testing.T) {
		c := newStepCluster(3)
		c.cfg.PrepareQuorum, c.cfg.AcceptQuorum = 3, 1
		p := c.proposer(t, "p")
		pr := p.Begin("k", set("v1"))
		feedPrepare(pr, c.prepare(t, pr, c.cfg.Acceptors...))
		pr.Apply()
		feedAccept(pr, c.accept(t, pr, "a0"))
		wantStatus(t, pr, synod.StatusDone)
		p.Complete(pr)
		// One promise of next is no prepare quorum of three.
		wantStatus(t, p.Begin("k", nil), synod.StatusPreparing)
	})
}

// twoProposers commits v1 through p1 (leaving p1 a fast-path entry), then has
// p2 win promises from ids with a ballot above p1's next one.
func twoProposers(t *testing.T, ids ...string) (c *stepCluster, p1, p2 *synod.Proposer, pr2 *synod.Proposal) {
	t.Helper()
	c = newStepCluster(3)
	p1, p2 = c.proposer(t, "p1"), c.proposer(t, "p2")
	if _, err := c.run(t, p1, p1.Begin("k", set("v1"))); err != nil {
		t.Fatal(err)
	}
	pr2 = p2.Begin("k", set("v2"))
	c.prepareUntilApply(t, p2, pr2, ids...)
	return c, p1, p2, pr2
}

// The fast path is refused once another proposer has prepared a higher
// ballot, and the proposal falls back to the two-phase round via Retry.
func TestProposalFastPathRefusedAfterForeignPrepare(t *testing.T) {
	t.Run("refused by a quorum, accepted by one", func(t *testing.T) {
		c, p1, _, _ := twoProposers(t, "a0", "a1")
		inc := &countingIncr{}
		pr := p1.Begin("k", func(cur []byte) ([]byte, error) { inc.f(nil); return append(slices.Clone(cur), '+'), nil })
		wantStatus(t, pr, synod.StatusApply)
		pr.Apply()
		feedAccept(pr, c.accept(t, pr, c.cfg.Acceptors...))
		wantStatus(t, pr, synod.StatusRefused)
		pr.Retry(p1)
		wantStatus(t, pr, synod.StatusPreparing)
		if pr.Request().Prepare == nil {
			t.Fatal("retry after a refused fast path sends no prepare")
		}
		// a2 accepted the fast-path value: a retry whose prepare quorum
		// includes a2 finds its own result and commits it again rather than
		// running the change a second time.
		feedPrepare(pr, c.prepare(t, pr, "a2", "a0"))
		wantStatus(t, pr, synod.StatusApply)
		v, err := c.run(t, p1, pr)
		if err != nil || string(v) != "v1+" || inc.runs != 1 {
			t.Errorf("Result() = %q, %v after %d runs; want v1+ from one run", v, err, inc.runs)
		}
	})
	t.Run("refused by every acceptor", func(t *testing.T) {
		c, p1, _, _ := twoProposers(t, "a0", "a1", "a2")
		inc := &countingIncr{}
		pr := p1.Begin("k", inc.f)
		pr.Apply()
		feedAccept(pr, c.accept(t, pr, c.cfg.Acceptors...))
		wantStatus(t, pr, synod.StatusRefused)
		if pr.Unsettled() {
			t.Error("Unsettled() after every acceptor refused")
		}
		pr.Retry(p1)
		wantStatus(t, pr, synod.StatusPreparing)
		// The refused value is nowhere, so the retry runs the change again
		// and is determinate.
		if v, err := c.run(t, p1, pr); err != nil || inc.runs != 2 {
			t.Errorf("Result() = %q, %v after %d runs; want success after 2 runs", v, err, inc.runs)
		}
	})
}

// A late refusal of a refused accept still counts: once every acceptor has
// refused, the proposal knows its result is nowhere.
func TestProposalUnsettled(t *testing.T) {
	for _, lastOK := range []bool{false, true} {
		t.Run(fmt.Sprintf("last acceptor accepted=%v", lastOK), func(t *testing.T) {
			c, p1, _, _ := twoProposers(t, "a0", "a1")
			pr := p1.Begin("k", set("mine"))
			pr.Apply()
			reps := c.accept(t, pr, "a0", "a1")
			feedAccept(pr, reps)
			wantStatus(t, pr, synod.StatusRefused)
			if !pr.Unsettled() {
				t.Fatal("Unsettled() = false with one acceptor yet to answer")
			}
			last := synod.AcceptReply{From: "a2", Key: "k", Ballot: pr.Ballot(), OK: lastOK}
			if !lastOK {
				last.Seen = bal(1000, "z")
			}
			pr.OnAcceptReply(last)
			if pr.Unsettled() {
				t.Error("Unsettled() = true after every acceptor answered")
			}
			err := pr.Abandon()
			if lastOK && !errors.Is(err, synod.ErrIndeterminate) {
				t.Errorf("Abandon() = %v, want ErrIndeterminate: a2 holds the result", err)
			}
			if !lastOK && !errors.Is(err, synod.ErrConflict) {
				t.Errorf("Abandon() = %v, want ErrConflict: every acceptor refused", err)
			}
		})
	}
}

// Abandon maps where the proposal stands to its error: ErrIndeterminate only
// when an accept carrying the change's result may have landed.
func TestProposalAbandon(t *testing.T) {
	errF := errors.New("f failed")
	tests := []struct {
		name  string
		f     synod.ChangeFunc
		steps func(t *testing.T, c *stepCluster, pr *synod.Proposal)
		want  error
	}{
		{
			name:  "preparing, no replies",
			f:     set("v"),
			steps: func(*testing.T, *stepCluster, *synod.Proposal) {},
			want:  synod.ErrUnavailable,
		},
		{
			name: "preparing, one promise",
			f:    set("v"),
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0"))
			},
			want: synod.ErrUnavailable,
		},
		{
			name: "prepare refused by a quorum",
			f:    set("v"),
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				c.st["a0"] = synod.AcceptorState{Promised: bal(50, "z")}
				c.st["a1"] = synod.AcceptorState{Promised: bal(60, "z")}
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
			},
			want: &synod.ConflictError{Key: "k", Proposed: bal(1, synod.ProposerID("p", 1)), Existing: bal(60, "z")},
		},
		{
			name: "accepting a result, no replies",
			f:    set("v"),
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
				pr.Apply()
			},
			want: synod.ErrIndeterminate,
		},
		{
			name: "accepting a result, one acceptance",
			f:    set("v"),
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
				pr.Apply()
				feedAccept(pr, c.accept(t, pr, "a0"))
			},
			want: synod.ErrIndeterminate,
		},
		{
			name: "accepting a read's write-back",
			f:    nil,
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
				pr.Apply()
				feedAccept(pr, c.accept(t, pr, "a0"))
			},
			want: synod.ErrUnavailable,
		},
		{
			name: "accepting a change function error's write-back",
			f:    func([]byte) ([]byte, error) { return nil, errF },
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
				pr.Apply()
			},
			want: synod.ErrUnavailable,
		},
		{
			name: "accept refused by a quorum, one acceptor silent",
			f:    set("v"),
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
				pr.Apply()
				c.st["a0"] = synod.AcceptorState{Promised: bal(50, "z")}
				c.st["a1"] = synod.AcceptorState{Promised: bal(50, "z")}
				feedAccept(pr, c.accept(t, pr, "a0", "a1"))
			},
			want: synod.ErrIndeterminate,
		},
		{
			name: "accept refused by every acceptor",
			f:    set("v"),
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
				pr.Apply()
				for _, id := range c.cfg.Acceptors {
					c.st[id] = synod.AcceptorState{Promised: bal(50, "z")}
				}
				feedAccept(pr, c.accept(t, pr, c.cfg.Acceptors...))
			},
			want: &synod.ConflictError{Key: "k", Proposed: bal(1, synod.ProposerID("p", 1)), Existing: bal(50, "z")},
		},
		{
			name: "done",
			f:    set("v"),
			steps: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
				feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
				pr.Apply()
				feedAccept(pr, c.accept(t, pr, "a0", "a1"))
			},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newStepCluster(3)
			p := c.proposer(t, "p")
			pr := p.Begin("k", tt.f)
			tt.steps(t, c, pr)
			err := pr.Abandon()
			wantStatus(t, pr, synod.StatusDone)
			if _, again := pr.Result(); again != err {
				t.Errorf("Result() error %v differs from Abandon() %v", again, err)
			}
			var wantConflict *synod.ConflictError
			switch {
			case errors.As(tt.want, &wantConflict):
				var got *synod.ConflictError
				if !errors.As(err, &got) || *got != *wantConflict || !errors.Is(err, synod.ErrConflict) {
					t.Errorf("Abandon() = %v, want %v", err, wantConflict)
				}
			case tt.want == nil:
				if err != nil {
					t.Errorf("Abandon() = %v, want nil", err)
				}
			case !errors.Is(err, tt.want):
				t.Errorf("Abandon() = %v, want %v", err, tt.want)
			}
			for _, sentinel := range []error{synod.ErrIndeterminate, synod.ErrUnavailable, synod.ErrConflict} {
				if sentinel != tt.want && errors.Is(err, sentinel) && wantConflict == nil {
					t.Errorf("Abandon() = %v also matches %v", err, sentinel)
				}
			}
		})
	}
}

// A retry that finds its own earlier result commits it again instead of
// running the change function a second time: no double apply.
func TestProposalRetryAdoptsOwnResult(t *testing.T) {
	c := newStepCluster(3)
	p := c.proposer(t, "p")
	if _, err := c.run(t, p, p.Begin("k", set("41"))); err != nil {
		t.Fatal(err)
	}
	p.Forget("k")
	inc := &countingIncr{}
	pr := p.Begin("k", inc.f)
	feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
	pr.Apply()
	c.accept(t, pr, "a0") // lands at a0; the reply is lost, the phase times out
	pr.Retry(p)
	feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
	pr.Apply()
	if inc.runs != 1 {
		t.Fatalf("change function ran %d times, want 1", inc.runs)
	}
	if got := string(pr.Request().Accept.Value); got != "42" {
		t.Errorf("retry commits %q, want its own earlier result 42", got)
	}
	v, err := c.run(t, p, pr)
	if err != nil || string(v) != "42" {
		t.Errorf("Result() = %q, %v; want 42", v, err)
	}
}

// A retry that finds a value below all of its own results runs the change
// function again: none of its results can be in that value.
func TestProposalRetryBelowOwnResultsRunsAgain(t *testing.T) {
	c := newStepCluster(3)
	p := c.proposer(t, "p")
	inc := &countingIncr{}
	pr := p.Begin("k", inc.f)
	feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
	pr.Apply() // the accept is lost everywhere
	pr.Retry(p)
	v, err := c.run(t, p, pr)
	if err != nil || string(v) != "1" || inc.runs != 2 {
		t.Errorf("Result() = %q, %v after %d runs; want 1 after 2 runs", v, err, inc.runs)
	}
}

// A retry that finds a higher foreign value, which may have been built on its
// own result, reports ErrIndeterminate rather than risk applying twice.
func TestProposalIndeterminateOnForeignHigherValue(t *testing.T) {
	c := newStepCluster(3)
	p1, p2 := c.proposer(t, "p1"), c.proposer(t, "p2")
	inc := &countingIncr{}
	pr := p1.Begin("k", inc.f)
	feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
	pr.Apply()
	c.accept(t, pr, "a0") // "1" lands at a0 only

	// p2 reads through a0 and a1, adopting p1's "1", and appends to it.
	pr2 := p2.Begin("k", func(cur []byte) ([]byte, error) { return append(slices.Clone(cur), '!'), nil })
	c.prepareUntilApply(t, p2, pr2, "a0", "a1")
	pr2.Apply()
	feedAccept(pr2, c.accept(t, pr2, "a0", "a1"))
	if v, err := pr2.Result(); err != nil || string(v) != "1!" {
		t.Fatalf("p2 committed %q, %v; want 1!", v, err)
	}

	pr.Retry(p1)
	c.prepareUntilApply(t, p1, pr, "a1", "a2")
	pr.Apply()
	wantStatus(t, pr, synod.StatusDone)
	if _, err := pr.Result(); !errors.Is(err, synod.ErrIndeterminate) {
		t.Errorf("Result() error = %v, want ErrIndeterminate", err)
	}
	if inc.runs != 1 {
		t.Errorf("change function ran %d times, want 1", inc.runs)
	}
	p1.Complete(pr)
	wantStatus(t, p1.Begin("k", nil), synod.StatusPreparing) // no fast path after an indeterminate end
}

// A read is the identity change: never indeterminate, whatever it finds.
func TestProposalReadNeverIndeterminate(t *testing.T) {
	c := newStepCluster(3)
	p1, p2 := c.proposer(t, "p1"), c.proposer(t, "p2")
	pr := p1.Begin("k", nil)
	feedPrepare(pr, c.prepare(t, pr, "a0", "a1"))
	pr.Apply()
	c.accept(t, pr, "a0")
	if _, err := c.run(t, p2, p2.Begin("k", set("foreign"))); err != nil {
		t.Fatal(err)
	}
	pr.Retry(p1)
	v, err := c.run(t, p1, pr)
	if err != nil || string(v) != "foreign" {
		t.Errorf("read = %q, %v; want foreign, nil", v, err)
	}
}

func TestNewProposerValidates(t *testing.T) {
	if _, err := synod.NewProposer("", synod.Config{Acceptors: []string{"a"}}); !errors.Is(err, synod.ErrInvalidConfig) {
		t.Errorf("empty ID: %v, want ErrInvalidConfig", err)
	}
	if _, err := synod.NewProposer("p", synod.Config{}); !errors.Is(err, synod.ErrInvalidConfig) {
		t.Errorf("empty config: %v, want ErrInvalidConfig", err)
	}
	cfg := synod.Config{Acceptors: []string{"a", "b", "c"}}
	p, err := synod.NewProposer("p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Acceptors[0] = "changed"
	if p.Config().Acceptors[0] != "a" {
		t.Error("the proposer shares the caller's acceptor slice")
	}
}
