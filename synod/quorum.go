package synod

import "slices"

// Config is the acceptor set and the quorum sizes. Zero quorums mean majorities.
//
// Paper: §2.2 (flexible quorums) — any prepare quorum must intersect any accept
// quorum, so PrepareQuorum + AcceptQuorum must exceed len(Acceptors).
type Config struct {
	Acceptors     []string
	PrepareQuorum int
	AcceptQuorum  int
	// Epoch is the configuration's version: 0 for a cluster that was never
	// reconfigured. Proposers send it with every request, so that acceptors
	// serving a newer configuration can refuse them.
	Epoch uint64
	// Floor is the ballot counter at or below which acceptors serving this
	// configuration refuse every request, whatever the key. Garbage
	// collection raises it (see the package doc, "Deletion"); proposers that
	// adopt the configuration start their counters above it. Zero for none.
	Floor uint64
}

// Validate reports an unusable configuration, wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	n := len(c.Acceptors)
	if n == 0 {
		return errorf(ErrInvalidConfig, "no acceptors")
	}
	seen := make(map[string]bool, n)
	for _, id := range c.Acceptors {
		if id == "" {
			return errorf(ErrInvalidConfig, "empty acceptor ID")
		}
		if seen[id] {
			return errorf(ErrInvalidConfig, "duplicate acceptor ID %q", id)
		}
		seen[id] = true
	}
	q1, q2 := c.Q1(), c.Q2()
	if q1 < 1 || q1 > n || q2 < 1 || q2 > n {
		return errorf(ErrInvalidConfig, "quorums prepare=%d accept=%d must lie in 1..%d", q1, q2, n)
	}
	if q1+q2 <= n {
		return errorf(ErrInvalidConfig, "prepare quorum %d + accept quorum %d must exceed %d acceptors, or quorums need not intersect", q1, q2, n)
	}
	return nil
}

// Q1 is the prepare quorum size.
func (c Config) Q1() int {
	if c.PrepareQuorum == 0 {
		return len(c.Acceptors)/2 + 1
	}
	return c.PrepareQuorum
}

// Q2 is the accept quorum size.
func (c Config) Q2() int {
	if c.AcceptQuorum == 0 {
		return len(c.Acceptors)/2 + 1
	}
	return c.AcceptQuorum
}

// Has reports whether id is one of the configured acceptors.
func (c Config) Has(id string) bool { return slices.Contains(c.Acceptors, id) }

// VoteResult is the state of a vote in one phase.
type VoteResult uint8

const (
	// VotePending means neither outcome is decided yet.
	VotePending VoteResult = iota
	// VoteLost means enough acceptors refused that the quorum is out of reach.
	VoteLost
	// VoteWon means a quorum agreed.
	VoteWon
)

// String implements fmt.Stringer.
func (v VoteResult) String() string {
	switch v {
	case VotePending:
		return "VotePending"
	case VoteLost:
		return "VoteLost"
	case VoteWon:
		return "VoteWon"
	}
	return "VoteResult(?)"
}

// tally returns the result of a vote among n acceptors needing quorum q, with
// yes acceptors agreeing and no refusing.
func tally(n, q, yes, no int) VoteResult {
	switch {
	case yes >= q:
		return VoteWon
	case n-no < q:
		return VoteLost
	}
	return VotePending
}
