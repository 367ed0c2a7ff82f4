package synod

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ErrStaleEpoch is matched by every *StaleEpochError: an acceptor refused a
// request because it serves a newer configuration than the request's epoch.
var ErrStaleEpoch = errors.New("synod: stale configuration epoch")

// StaleEpochError is the error of a reply from an acceptor that serves a newer
// configuration than the request's (or that is no longer a member of its own
// configuration). Config is the acceptor's configuration: a proposer adopts it
// (Proposer.Adopt) and retries. It matches ErrStaleEpoch with errors.Is.
type StaleEpochError struct {
	Acceptor string
	Epoch    uint64 // the request's epoch
	Config   Config // the acceptor's configuration
}

// Error implements error.
func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("synod: acceptor %s serves epoch %d %v, request has epoch %d", e.Acceptor, e.Config.Epoch, e.Config.Acceptors, e.Epoch)
}

// Is makes errors.Is(err, ErrStaleEpoch) true.
func (e *StaleEpochError) Is(target error) bool { return target == ErrStaleEpoch }

// staleConfig returns the configuration carried by err if it is a
// *StaleEpochError, else nil.
func staleConfig(err error) *Config {
	var se *StaleEpochError
	if errors.As(err, &se) {
		return &se.Config
	}
	return nil
}

// PrepareMeetsAccept reports whether every prepare quorum of a (any Q1-sized
// subset of a.Acceptors) shares an acceptor with every accept quorum of b (any
// Q2-sized subset of b.Acceptors).
//
// A disjoint pair, if one exists, takes its prepare quorum from the acceptors
// only a has first and its accept quorum from those only b has first; it
// exists exactly when what both still need from the shared acceptors fits in
// them.
func PrepareMeetsAccept(a, b Config) bool {
	onlyA, onlyB, both := 0, 0, 0
	for _, id := range a.Acceptors {
		if b.Has(id) {
			both++
		} else {
			onlyA++
		}
	}
	for _, id := range b.Acceptors {
		if !a.Has(id) {
			onlyB++
		}
	}
	return max(0, a.Q1()-onlyA)+max(0, b.Q2()-onlyB) > both
}

// ValidateStep reports, wrapped in ErrInvalidConfig, whether next cannot
// directly follow prev. A step is safe when proposers may use prev and next
// at the same time (some adopt next while others still run rounds with prev):
// both are valid, next.Epoch is prev.Epoch+1, every prepare quorum of either
// meets every accept quorum of the other, and the ballot floor does not go
// down. See the package doc, "Membership change", for why this and the fence
// and rescan that follow every step are enough.
func ValidateStep(prev, next Config) error {
	if err := prev.Validate(); err != nil {
		return fmt.Errorf("step from epoch %d: %w", prev.Epoch, err)
	}
	if err := next.Validate(); err != nil {
		return fmt.Errorf("step to epoch %d: %w", next.Epoch, err)
	}
	switch {
	case next.Epoch != prev.Epoch+1:
		return errorf(ErrInvalidConfig, "step from epoch %d to %d: epochs must advance by one", prev.Epoch, next.Epoch)
	case next.Floor < prev.Floor:
		return errorf(ErrInvalidConfig, "step to epoch %d: ballot floor %d below %d", next.Epoch, next.Floor, prev.Floor)
	case !PrepareMeetsAccept(prev, next):
		return errorf(ErrInvalidConfig, "step %s -> %s: a prepare quorum of the old configuration can miss an accept quorum of the new one", prev, next)
	case !PrepareMeetsAccept(next, prev):
		return errorf(ErrInvalidConfig, "step %s -> %s: a prepare quorum of the new configuration can miss an accept quorum of the old one", prev, next)
	}
	return nil
}

// String formats c as "e<epoch>[a1 a2 a3]q<Q1>/<Q2>".
func (c Config) String() string {
	s := fmt.Sprintf("e%d%vq%d/%d", c.Epoch, c.Acceptors, c.Q1(), c.Q2())
	if c.Floor > 0 {
		s += fmt.Sprintf("f%d", c.Floor)
	}
	return s
}

// Clone returns a copy of c that shares no memory with it.
func (c Config) Clone() Config {
	c.Acceptors = slices.Clone(c.Acceptors)
	return c
}

// PlanSteps returns the configurations that lead from cur to the acceptor set
// target, one acceptor added or removed per step, each with majority quorums
// and the next epoch: first every acceptor target adds, one by one, then every
// acceptor it drops. Replacing an acceptor is an add followed by a remove. The
// floor is kept. Every step passes ValidateStep; a plan that would need a
// step that does not (cur has flexible quorums that no single-acceptor step
// can leave safely, say) is an error.
//
// dead names acceptors that are gone for good (their disks lost): they are
// never waited for. Each step must still find a quorum of each kind among its
// living acceptors, and every accept quorum of the configuration it leaves
// must keep a living acceptor, or the rescan could not see every value.
func PlanSteps(cur Config, target []string, dead []string) ([]Config, error) {
	if err := cur.Validate(); err != nil {
		return nil, err
	}
	if err := (Config{Acceptors: target}).Validate(); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	var steps []Config
	prev := cur.Clone()
	step := func(ids []string) error {
		next := Config{Acceptors: ids, Epoch: prev.Epoch + 1, Floor: prev.Floor}
		if err := ValidateStep(prev, next); err != nil {
			return err
		}
		if err := checkAlive(prev, next, dead); err != nil {
			return err
		}
		steps = append(steps, next)
		prev = next
		return nil
	}
	for _, id := range target {
		if !prev.Has(id) {
			if slices.Contains(dead, id) {
				return nil, errorf(ErrInvalidConfig, "cannot add %s: it is declared dead", id)
			}
			if err := step(append(slices.Clone(prev.Acceptors), id)); err != nil {
				return nil, err
			}
		}
	}
	for _, id := range slices.Clone(prev.Acceptors) {
		if !slices.Contains(target, id) {
			ids := slices.DeleteFunc(slices.Clone(prev.Acceptors), func(s string) bool { return s == id })
			if err := step(ids); err != nil {
				return nil, err
			}
		}
	}
	return steps, nil
}

// checkAlive reports a step that the dead acceptors make impossible to take
// safely or to use.
func checkAlive(prev, next Config, dead []string) error {
	living := func(c Config) int {
		n := 0
		for _, id := range c.Acceptors {
			if !slices.Contains(dead, id) {
				n++
			}
		}
		return n
	}
	if n := len(prev.Acceptors) - living(prev); n >= prev.Q2() {
		return errorf(ErrInvalidConfig, "%d dead acceptors in %s: an accept quorum of it may hold values no living acceptor has", n, prev)
	}
	if n := living(next); n < max(next.Q1(), next.Q2()) {
		return errorf(ErrInvalidConfig, "step to %s: only %d living acceptors, quorums need %d", next, n, max(next.Q1(), next.Q2()))
	}
	return nil
}

// configVersion is the version byte of the binary Config encoding.
const configVersion = 1

// Limits of the binary Config encoding.
const (
	maxConfigAcceptors = 1024
	maxAcceptorIDLen   = 1024
)

// MarshalBinary encodes c: a version byte, then epoch, floor, the quorum
// fields as given (zero for majorities) and the acceptor count as uvarints,
// then each acceptor ID as a uvarint length and its bytes. It is the detail of
// the wire's stale-epoch error and the acceptors' stored configuration record.
func (c Config) MarshalBinary() ([]byte, error) {
	if len(c.Acceptors) > maxConfigAcceptors {
		return nil, errorf(ErrInvalidConfig, "%d acceptors, at most %d", len(c.Acceptors), maxConfigAcceptors)
	}
	b := []byte{configVersion}
	b = binary.AppendUvarint(b, c.Epoch)
	b = binary.AppendUvarint(b, c.Floor)
	if c.PrepareQuorum < 0 || c.AcceptQuorum < 0 {
		return nil, errorf(ErrInvalidConfig, "negative quorum")
	}
	b = binary.AppendUvarint(b, uint64(c.PrepareQuorum))
	b = binary.AppendUvarint(b, uint64(c.AcceptQuorum))
	b = binary.AppendUvarint(b, uint64(len(c.Acceptors)))
	for _, id := range c.Acceptors {
		if len(id) > maxAcceptorIDLen {
			return nil, errorf(ErrInvalidConfig, "acceptor ID of %d bytes, at most %d", len(id), maxAcceptorIDLen)
		}
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded, checking every length
// against the bytes left before it allocates, and validates the result.
// Errors wrap ErrInvalidConfig.
func (c *Config) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] != configVersion {
		return errorf(ErrInvalidConfig, "config encoding: unknown version")
	}
	rest := data[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, false
		}
		rest = rest[n:]
		return v, true
	}
	var out Config
	var q1, q2, n uint64
	var ok bool
	for _, p := range []*uint64{&out.Epoch, &out.Floor, &q1, &q2, &n} {
		if *p, ok = next(); !ok {
			return errorf(ErrInvalidConfig, "config encoding: truncated")
		}
	}
	if q1 > maxConfigAcceptors || q2 > maxConfigAcceptors || n > maxConfigAcceptors || n > uint64(len(rest)) {
		return errorf(ErrInvalidConfig, "config encoding: counts out of range")
	}
	out.PrepareQuorum, out.AcceptQuorum = int(q1), int(q2)
	out.Acceptors = make([]string, 0, n)
	for range n {
		l, ok := next()
		if !ok || l > maxAcceptorIDLen || l > uint64(len(rest)) {
			return errorf(ErrInvalidConfig, "config encoding: bad acceptor ID length")
		}
		out.Acceptors = append(out.Acceptors, string(rest[:l]))
		rest = rest[l:]
	}
	if len(rest) != 0 {
		return errorf(ErrInvalidConfig, "config encoding: %d trailing bytes", len(rest))
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*c = out
	return nil
}
