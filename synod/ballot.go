package synod

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
)

// Ballot orders proposals. Ballots compare by Counter, then by Proposer; the zero
// Ballot is smaller than every other and stands for "nothing promised or accepted".
//
// Paper: §2.1 "each proposer generates unique increasing ballot numbers". A
// proposer's ID carries a random boot nonce (see ProposerID), so a restarted
// process never reuses a ballot without persisting its counter.
type Ballot struct {
	Counter  uint64
	Proposer string
}

// Compare returns -1, 0 or +1 as b is less than, equal to or greater than o.
func (b Ballot) Compare(o Ballot) int {
	if c := cmp.Compare(b.Counter, o.Counter); c != 0 {
		return c
	}
	return strings.Compare(b.Proposer, o.Proposer)
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool { return b.Compare(o) < 0 }

// IsZero reports whether b is the zero ballot.
func (b Ballot) IsZero() bool { return b.Counter == 0 && b.Proposer == "" }

// Valid reports whether b may appear in a request: a positive counter and a proposer.
func (b Ballot) Valid() bool { return b.Counter > 0 && b.Proposer != "" }

// String formats b as counter/proposer; the zero ballot prints as "ø".
func (b Ballot) String() string {
	if b.IsZero() {
		return "ø"
	}
	return fmt.Sprintf("%d/%s", b.Counter, b.Proposer)
}

// maxBallot returns the greater of a and b.
func maxBallot(a, b Ballot) Ballot {
	if a.Less(b) {
		return b
	}
	return a
}

// ProposerID returns the ID "<node>/<nonce as 16 hex digits>". The nonce must be
// fresh for every process start (see RandomProposerID) so that ballots stay unique
// across restarts without persisting a counter.
func ProposerID(node string, nonce uint64) string {
	return fmt.Sprintf("%s/%016x", node, nonce)
}

// RandomProposerID returns ProposerID(node, n) with n drawn from crypto/rand.
func RandomProposerID(node string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return ProposerID(node, binary.BigEndian.Uint64(b[:]))
}
