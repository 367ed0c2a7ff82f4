package synod_test

import (
	"regexp"
	"testing"
	"testing/quick"

	"github.com/protosynod/protosynod/synod"
)

// Paper: §2.1 — ballots are totally ordered by counter, then proposer ID.
func TestBallotCompare(t *testing.T) {
	tests := []struct {
		a, b synod.Ballot
		want int
	}{
		{synod.Ballot{}, synod.Ballot{}, 0},
		{synod.Ballot{}, bal(1, "a"), -1},
		{bal(1, "a"), bal(1, "a"), 0},
		{bal(1, "a"), bal(2, "a"), -1},
		{bal(2, "a"), bal(1, "z"), 1},
		{bal(1, "a"), bal(1, "b"), -1},
		{bal(1, "b"), bal(1, "a"), 1},
		{bal(^uint64(0), ""), bal(1, "z"), 1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.a.Less(tt.b); got != (tt.want < 0) {
			t.Errorf("%v.Less(%v) = %v, want %v", tt.a, tt.b, got, tt.want < 0)
		}
	}
}

func TestBallotOrderIsTotal(t *testing.T) {
	f := func(c1, c2 uint8, p1, p2 bool) bool {
		id := func(b bool) string {
			if b {
				return "q"
			}
			return "p"
		}
		a, b := bal(uint64(c1%4), id(p1)), bal(uint64(c2%4), id(p2))
		// Antisymmetric and consistent with equality.
		return a.Compare(b) == -b.Compare(a) && (a.Compare(b) == 0) == (a == b)
	}
	if err := quick.Check(f, nil); err != nil {
		t.Error(err)
	}
}

func TestBallotString(t *testing.T) {
	if got := (synod.Ballot{}).String(); got != "ø" {
		t.Errorf("zero ballot prints %q, want ø", got)
	}
	if got := bal(7, "n/1").String(); got != "7/n/1" {
		t.Errorf("ballot prints %q, want 7/n/1", got)
	}
	if (synod.Ballot{}).Valid() || !bal(1, "p").Valid() || bal(1, "").Valid() || bal(0, "p").Valid() {
		t.Error("Valid wants a positive counter and a proposer")
	}
}

// Proposer IDs carry a fresh nonce per process start, so ballots stay unique
// across restarts without a persisted counter.
func TestProposerID(t *testing.T) {
	if got := synod.ProposerID("node", 0xabc); got != "node/0000000000000abc" {
		t.Errorf("ProposerID = %q", got)
	}
	re := regexp.MustCompile(`^node/[0-9a-f]{16}$`)
	a, b := synod.RandomProposerID("node"), synod.RandomProposerID("node")
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Errorf("RandomProposerID = %q, %q; want node/<16 hex digits>", a, b)
	}
	if a == b {
		t.Errorf("two RandomProposerIDs are equal: %q", a)
	}
}
