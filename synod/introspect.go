package synod

// This file holds read-only views of a Proposer and a Proposal for tools that
// show the protocol at work (cmd/synod-viz). They change nothing.

// Votes returns how many acceptors agreed (promised or accepted) and refused in
// the current phase of the current attempt.
func (pr *Proposal) Votes() (yes, no int) { return pr.yes, pr.no }

// Latest returns the greatest accepted ballot and its value among the promises
// of the current attempt so far: the value Apply starts from. After a
// one-round-trip Begin it is the cached value, with a zero ballot.
func (pr *Proposal) Latest() (Ballot, []byte) { return pr.highest, pr.current }

// Cached returns key's one-round-trip entry: the ballot that a quorum promised
// when it accepted value, which the next change of key uses without a prepare.
// ok is false when the proposer holds no entry for key (or the fast path is
// disabled).
func (p *Proposer) Cached(key string) (next Ballot, value []byte, ok bool) {
	e, ok := p.fast[key]
	if !ok || p.noFast {
		return Ballot{}, nil, false
	}
	return e.next, e.value, true
}
