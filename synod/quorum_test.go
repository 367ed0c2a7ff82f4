package synod

import (
	"errors"
	"testing"
	"testing/quick"
)

func TestTally(t *testing.T) {
	tests := []struct {
		n, q, yes, no int
		want          VoteResult
	}{
		{3, 2, 0, 0, VotePending},
		{3, 2, 1, 0, VotePending},
		{3, 2, 2, 0, VoteWon},
		{3, 2, 1, 1, VotePending},
		{3, 2, 0, 1, VotePending},
		{3, 2, 0, 2, VoteLost},
		{3, 2, 1, 2, VoteLost},
		{3, 2, 2, 1, VoteWon},
		{3, 3, 2, 0, VotePending},
		{3, 3, 2, 1, VoteLost},
		{3, 1, 0, 2, VotePending},
		{3, 1, 0, 3, VoteLost},
		{3, 1, 1, 0, VoteWon},
		{5, 3, 2, 2, VotePending},
		{5, 3, 2, 3, VoteLost},
		{5, 4, 3, 1, VotePending},
		{5, 4, 3, 2, VoteLost},
		{1, 1, 0, 0, VotePending},
		{1, 1, 1, 0, VoteWon},
		{1, 1, 0, 1, VoteLost},
	}
	for _, tt := range tests {
		if got := tally(tt.n, tt.q, tt.yes, tt.no); got != tt.want {
			t.Errorf("tally(n=%d, q=%d, yes=%d, no=%d) = %v, want %v", tt.n, tt.q, tt.yes, tt.no, got, tt.want)
		}
	}
}

// tallyOracle decides a vote by brute force: it is won if yes already reaches
// the quorum, lost if no way of casting the missing votes reaches it.
func tallyOracle(n, q, yes, no int) VoteResult {
	if yes >= q {
		return VoteWon
	}
	for extra := 0; extra <= n-yes-no; extra++ {
		if yes+extra >= q {
			return VotePending
		}
	}
	return VoteLost
}

// TestTallyQuick checks tally against the oracle on random votes.
func TestTallyQuick(t *testing.T) {
	norm := func(a, b, c, d uint8) (n, q, yes, no int) {
		n = 1 + int(a)%9
		q = 1 + int(b)%n
		yes = int(c) % (n + 1)
		no = int(d) % (n - yes + 1)
		return
	}
	fast := func(a, b, c, d uint8) VoteResult { return tally(norm(a, b, c, d)) }
	slow := func(a, b, c, d uint8) VoteResult { return tallyOracle(norm(a, b, c, d)) }
	if err := quick.CheckEqual(fast, slow, &quick.Config{MaxCount: 5000}); err != nil {
		t.Error(err)
	}
}

// Paper: §2.2 — flexible quorums: a configuration is valid only if every
// prepare quorum intersects every accept quorum.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		ok     bool
		q1, q2 int
	}{
		{"three, majorities", Config{Acceptors: []string{"a", "b", "c"}}, true, 2, 2},
		{"four, majorities", Config{Acceptors: []string{"a", "b", "c", "d"}}, true, 3, 3},
		{"five, flexible 4+2", Config{Acceptors: []string{"a", "b", "c", "d", "e"}, PrepareQuorum: 4, AcceptQuorum: 2}, true, 4, 2},
		{"three, flexible 3+1", Config{Acceptors: []string{"a", "b", "c"}, PrepareQuorum: 3, AcceptQuorum: 1}, true, 3, 1},
		{"one acceptor", Config{Acceptors: []string{"a"}}, true, 1, 1},
		{"empty set", Config{}, false, 0, 0},
		{"empty ID", Config{Acceptors: []string{"a", ""}}, false, 0, 0},
		{"duplicate IDs", Config{Acceptors: []string{"a", "b", "a"}}, false, 0, 0},
		{"Q1+Q2 = N", Config{Acceptors: []string{"a", "b", "c", "d"}, PrepareQuorum: 2, AcceptQuorum: 2}, false, 0, 0},
		{"Q1+Q2 < N", Config{Acceptors: []string{"a", "b", "c", "d", "e"}, PrepareQuorum: 2, AcceptQuorum: 2}, false, 0, 0},
		{"prepare quorum above N", Config{Acceptors: []string{"a", "b", "c"}, PrepareQuorum: 4}, false, 0, 0},
		{"accept quorum above N", Config{Acceptors: []string{"a", "b", "c"}, AcceptQuorum: 4}, false, 0, 0},
		{"negative quorum", Config{Acceptors: []string{"a", "b", "c"}, PrepareQuorum: -1, AcceptQuorum: 3}, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if got := err == nil; got != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("error %v does not match ErrInvalidConfig", err)
				}
				return
			}
			if tt.cfg.Q1() != tt.q1 || tt.cfg.Q2() != tt.q2 {
				t.Errorf("Q1, Q2 = %d, %d, want %d, %d", tt.cfg.Q1(), tt.cfg.Q2(), tt.q1, tt.q2)
			}
		})
	}
}

// TestConfigQuorumsIntersect checks with random configurations that every
// valid one has intersecting quorums and every one with intersecting quorums
// of sensible sizes is valid.
func TestConfigQuorumsIntersect(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f", "g"}
	f := func(a, b, c uint8) bool {
		n := 1 + int(a)%len(ids)
		cfg := Config{Acceptors: ids[:n], PrepareQuorum: int(b) % (n + 2), AcceptQuorum: int(c) % (n + 2)}
		q1, q2 := cfg.Q1(), cfg.Q2()
		want := q1 >= 1 && q1 <= n && q2 >= 1 && q2 <= n && q1+q2 > n
		return (cfg.Validate() == nil) == want
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

func TestVoteResultString(t *testing.T) {
	for v, want := range map[VoteResult]string{VotePending: "VotePending", VoteLost: "VoteLost", VoteWon: "VoteWon", 9: "VoteResult(?)"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", v, got, want)
		}
	}
}
