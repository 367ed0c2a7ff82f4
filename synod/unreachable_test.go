package synod_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// errNoResponders is what a transport delivers for a stopped acceptor (NATS
// "no responders"): the request reached nobody.
var errNoResponders = fmt.Errorf("acceptor a?: no responders: %w", synod.ErrNotDelivered)

func TestErrNotDeliveredMatchesErrUnavailable(t *testing.T) {
	if !errors.Is(synod.ErrNotDelivered, synod.ErrUnavailable) || errors.Is(synod.ErrNotDelivered, synod.ErrStorage) {
		t.Fatal("ErrNotDelivered must match ErrUnavailable and not ErrStorage")
	}
}

func undeliveredPrepare(pr *synod.Proposal, from string) synod.PrepareReply {
	return synod.PrepareReply{From: from, Key: pr.Key(), Ballot: pr.Ballot(), Err: errNoResponders}
}

func undeliveredAccept(pr *synod.Proposal, from string) synod.AcceptReply {
	return synod.AcceptReply{From: from, Key: pr.Key(), Ballot: pr.Ballot(), Err: errNoResponders}
}

// TestProposalPrepareNotDelivered: a prepare that reached no acceptor process
// is neither a promise nor a refusal; when too few acceptors are left for a
// prepare quorum the proposal ends at once with ErrUnavailable, and with
// ErrStorage too when storage failures are among the reasons.
func TestProposalPrepareNotDelivered(t *testing.T) {
	tests := []struct {
		name       string
		replies    func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply
		wantStatus synod.Status
		wantErr    []error
		notErr     []error
	}{{
		name: "two of three not delivered: unavailable",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			return []synod.PrepareReply{undeliveredPrepare(pr, "a0"), undeliveredPrepare(pr, "a1")}
		},
		wantStatus: synod.StatusDone,
		wantErr:    []error{synod.ErrUnavailable, synod.ErrNotDelivered},
		notErr:     []error{synod.ErrIndeterminate, synod.ErrStorage, synod.ErrConflict},
	}, {
		name: "one not delivered, one storage failure: both named",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			return []synod.PrepareReply{undeliveredPrepare(pr, "a0"), failedPrepare(pr, "a1")}
		},
		wantStatus: synod.StatusDone,
		wantErr:    []error{synod.ErrUnavailable, synod.ErrStorage, synod.ErrNoSpace},
		notErr:     []error{synod.ErrIndeterminate},
	}, {
		name: "one not delivered, two promised: apply",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			return append([]synod.PrepareReply{undeliveredPrepare(pr, "a0")}, c.prepare(t, pr, "a1", "a2")...)
		},
		wantStatus: synod.StatusApply,
	}, {
		name: "one not delivered, one refused: retry",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			rep := c.prepare(t, pr, "a1")[0]
			rep.OK, rep.Seen = false, synod.Ballot{Counter: 99, Proposer: "other"}
			return []synod.PrepareReply{undeliveredPrepare(pr, "a0"), rep}
		},
		wantStatus: synod.StatusRefused,
	}, {
		name: "a repeated reply counts once",
		replies: func(t *testing.T, c *stepCluster, pr *synod.Proposal) []synod.PrepareReply {
			return []synod.PrepareReply{undeliveredPrepare(pr, "a0"), undeliveredPrepare(pr, "a0")}
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
			t.Log(err)
		})
	}
}

// TestProposalAcceptNotDelivered: an accept that carried the change's result
// and reached an acceptor may be adopted later, so the proposal ends
// ErrIndeterminate (and ErrUnavailable) when the others were unreachable; an
// accept that every acceptor refused or never got is nowhere, so the change
// was not applied: ErrUnavailable alone.
func TestProposalAcceptNotDelivered(t *testing.T) {
	tests := []struct {
		name    string
		f       synod.ChangeFunc
		feed    func(t *testing.T, c *stepCluster, pr *synod.Proposal)
		wantErr []error
		notErr  []error
	}{{
		name: "one accepted, two not delivered: indeterminate",
		f:    set("v"),
		feed: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
			feedAccept(pr, c.accept(t, pr, "a2"))
			pr.OnAcceptReply(undeliveredAccept(pr, "a0"))
			pr.OnAcceptReply(undeliveredAccept(pr, "a1"))
		},
		wantErr: []error{synod.ErrUnavailable, synod.ErrIndeterminate},
		notErr:  []error{synod.ErrStorage},
	}, {
		name: "two not delivered first, then accepted: indeterminate",
		f:    set("v"),
		feed: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
			pr.OnAcceptReply(undeliveredAccept(pr, "a0"))
			pr.OnAcceptReply(undeliveredAccept(pr, "a1"))
			wantStatus(t, pr, synod.StatusAccepting) // the third's reply decides
			feedAccept(pr, c.accept(t, pr, "a2"))
		},
		wantErr: []error{synod.ErrUnavailable, synod.ErrIndeterminate},
	}, {
		name: "none delivered: not applied",
		f:    set("v"),
		feed: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
			for _, id := range []string{"a0", "a1", "a2"} {
				pr.OnAcceptReply(undeliveredAccept(pr, id))
			}
		},
		wantErr: []error{synod.ErrUnavailable},
		notErr:  []error{synod.ErrIndeterminate},
	}, {
		name: "one refused, two not delivered: not applied",
		f:    set("v"),
		feed: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
			pr.OnAcceptReply(synod.AcceptReply{From: "a2", Key: pr.Key(), Ballot: pr.Ballot(), Seen: synod.Ballot{Counter: 99, Proposer: "other"}})
			pr.OnAcceptReply(undeliveredAccept(pr, "a0"))
			pr.OnAcceptReply(undeliveredAccept(pr, "a1"))
		},
		wantErr: []error{synod.ErrUnavailable},
		notErr:  []error{synod.ErrIndeterminate},
	}, {
		name: "one storage failure, one not delivered, one refused: indeterminate",
		f:    set("v"),
		feed: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
			pr.OnAcceptReply(synod.AcceptReply{From: "a2", Key: pr.Key(), Ballot: pr.Ballot(), Seen: synod.Ballot{Counter: 99, Proposer: "other"}})
			pr.OnAcceptReply(failedAccept(pr, "a0"))
			pr.OnAcceptReply(undeliveredAccept(pr, "a1"))
		},
		wantErr: []error{synod.ErrUnavailable, synod.ErrIndeterminate}, // the store may have landed
	}, {
		name: "write-back, one accepted: not applied",
		f:    func([]byte) ([]byte, error) { return nil, errors.New("no") },
		feed: func(t *testing.T, c *stepCluster, pr *synod.Proposal) {
			feedAccept(pr, c.accept(t, pr, "a2"))
			pr.OnAcceptReply(undeliveredAccept(pr, "a0"))
			pr.OnAcceptReply(undeliveredAccept(pr, "a1"))
		},
		wantErr: []error{synod.ErrUnavailable},
		notErr:  []error{synod.ErrIndeterminate},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newStepCluster(3)
			p := c.proposer(t, "p")
			pr := p.Begin("k", tt.f)
			feedPrepare(pr, c.prepare(t, pr, "a0", "a1", "a2"))
			pr.Apply()
			wantStatus(t, pr, synod.StatusAccepting)
			tt.feed(t, c, pr)
			if pr.Status() == synod.StatusRefused {
				// Refusals lost the phase first: the retry finds two
				// acceptors unreachable.
				pr.Retry(p)
				feedPrepare(pr, []synod.PrepareReply{undeliveredPrepare(pr, "a0"), undeliveredPrepare(pr, "a1")})
			}
			wantStatus(t, pr, synod.StatusDone)
			_, err := pr.Result()
			checkIs(t, err, tt.wantErr, tt.notErr)
			t.Log(err)
			p.Complete(pr)
			if next := p.Begin("k", set("w")); next.Status() != synod.StatusPreparing {
				t.Fatalf("after a failed accept the next change is %v, want Preparing (no fast path)", next.Status())
			}
		})
	}
}

// TestProposalRefusedThenNotDelivered: after a refusal ended the accept phase,
// late replies still count: an accept refused by one acceptor and not
// delivered to the others is nowhere, so the retry stays determinate.
func TestProposalRefusedThenNotDelivered(t *testing.T) {
	c := newStepCluster(3)
	p := c.proposer(t, "p")
	pr := p.Begin("k", set("v"))
	feedPrepare(pr, c.prepare(t, pr, "a0", "a1", "a2"))
	pr.Apply()
	other := synod.Ballot{Counter: 99, Proposer: "other"}
	refuse := func(id string) synod.AcceptReply {
		return synod.AcceptReply{From: id, Key: pr.Key(), Ballot: pr.Ballot(), Seen: other}
	}
	pr.OnAcceptReply(refuse("a0"))
	pr.OnAcceptReply(refuse("a1"))
	wantStatus(t, pr, synod.StatusRefused)
	if !pr.Unsettled() {
		t.Fatal("refused with a reply missing: want Unsettled")
	}
	pr.OnAcceptReply(undeliveredAccept(pr, "a2"))
	if pr.Unsettled() {
		t.Fatal("every acceptor answered: want settled")
	}
	if err := pr.Abandon(); !errors.Is(err, synod.ErrConflict) {
		t.Fatalf("abandoned after every acceptor refused or never got the accept: %v, want a conflict (not applied)", err)
	}
}

// TestClientFailsFastWhenAcceptorsStopped: with two of three acceptors
// stopped (their requests answered "not delivered", as NATS answers "no
// responders"), a change ends long before its deadline and phase timeout with
// ErrUnavailable, and reads too; with one stopped, changes commit.
func TestClientFailsFastWhenAcceptorsStopped(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "p", cfg, tr, synod.WithPhaseTimeout(time.Minute))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tr.Stop("a0")
	if _, err := c.Change(ctx, "k", set("1")); err != nil {
		t.Fatalf("one acceptor stopped: %v", err)
	}
	tr.Stop("a1")
	for i := range 3 { // fast path first, then two-phase rounds
		start := time.Now()
		_, err := c.Change(ctx, "k", set(fmt.Sprint(i+2)))
		if !errors.Is(err, synod.ErrUnavailable) || errors.Is(err, synod.ErrStorage) {
			t.Fatalf("change %d with two acceptors stopped: got %v, want ErrUnavailable", i, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("change %d took %v: it waited instead of failing fast", i, d)
		}
		t.Logf("change %d: %v", i, err)
	}
	start := time.Now()
	if _, err := c.Read(ctx, "k"); !errors.Is(err, synod.ErrUnavailable) || time.Since(start) > 10*time.Second {
		t.Fatalf("read with two acceptors stopped: %v after %v, want ErrUnavailable at once", err, time.Since(start))
	}
	tr.Heal()
	if v, err := c.Change(ctx, "k", set("ok")); err != nil || string(v) != "ok" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
}
