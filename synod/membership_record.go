package synod

import (
	"encoding/binary"
	"slices"
	"strings"
)

// ReservedPrefix starts the keys synod keeps for itself, such as
// MembershipKey. Client.Delete refuses them and garbage collection skips them.
const ReservedPrefix = "\x00synod/"

// MembershipKey is the register that holds the cluster's Membership: every
// reconfiguration and garbage collection claims its next epoch there with a
// compare-and-set, so two operators can never install different
// configurations under one epoch. It is rescanned like every other key.
const MembershipKey = ReservedPrefix + "membership"

// Membership is the record a Reconfigurer keeps in MembershipKey.
type Membership struct {
	// Config is the newest configuration claimed. It may not be installed
	// everywhere yet: Done says whether its step completed.
	Config Config
	// Previous is the acceptor set of the configuration before Config,
	// which the step's fence covers too.
	Previous []string
	// Done is the newest epoch whose fence (and rescan) completed. Done <
	// Config.Epoch means a step is under way: Reconfigurer.Resume ends it.
	Done uint64
	// Target is the acceptor set a reconfiguration is moving to; nil when
	// none is under way.
	Target []string
	// Dead lists acceptors declared gone for good: never waited for, never
	// asked for keys, never allowed back.
	Dead []string
	// Retired lists acceptors that were members once. Their IDs never rejoin:
	// an acceptor that comes back with old state could bring deleted or
	// superseded values back.
	Retired []string
}

// Busy reports whether a reconfiguration or a step is under way.
func (m Membership) Busy() bool { return m.Done < m.Config.Epoch || m.Target != nil }

// membershipVersion is the version byte of the Membership encoding.
const membershipVersion = 1

// MarshalBinary encodes m: a version byte, the Config encoding with its
// length, Done, then Previous, Target, Dead and Retired as counted string
// lists (all counts and lengths uvarints). A nil Target is distinguished from
// an empty one by a presence byte.
func (m Membership) MarshalBinary() ([]byte, error) {
	cfg, err := m.Config.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := []byte{membershipVersion}
	b = binary.AppendUvarint(b, uint64(len(cfg)))
	b = append(b, cfg...)
	b = binary.AppendUvarint(b, m.Done)
	b = appendList(b, m.Previous)
	if m.Target == nil {
		b = append(b, 0)
	} else {
		b = appendList(append(b, 1), m.Target)
	}
	b = appendList(b, m.Dead)
	b = appendList(b, m.Retired)
	return b, nil
}

func appendList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// UnmarshalBinary decodes what MarshalBinary encoded, checking every length
// against the bytes left. Errors wrap ErrInvalidConfig.
func (m *Membership) UnmarshalBinary(data []byte) error {
	bad := func(what string) error { return errorf(ErrInvalidConfig, "membership encoding: %s", what) }
	if len(data) == 0 || data[0] != membershipVersion {
		return bad("unknown version")
	}
	rest := data[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, false
		}
		rest = rest[n:]
		return v, true
	}
	list := func() ([]string, bool) {
		n, ok := uv()
		if !ok || n > maxConfigAcceptors || n > uint64(len(rest)) {
			return nil, false
		}
		if n == 0 {
			return nil, true
		}
		l := make([]string, 0, n)
		for range n {
			k, ok := uv()
			if !ok || k > maxAcceptorIDLen || k > uint64(len(rest)) {
				return nil, false
			}
			l = append(l, string(rest[:k]))
			rest = rest[k:]
		}
		return l, true
	}
	var out Membership
	n, ok := uv()
	if !ok || n > uint64(len(rest)) {
		return bad("truncated configuration")
	}
	if err := out.Config.UnmarshalBinary(rest[:n]); err != nil {
		return err
	}
	rest = rest[n:]
	if out.Done, ok = uv(); !ok {
		return bad("truncated")
	}
	if out.Previous, ok = list(); !ok {
		return bad("bad previous set")
	}
	if len(rest) == 0 || rest[0] > 1 {
		return bad("bad target marker")
	}
	hasTarget := rest[0] == 1
	rest = rest[1:]
	if hasTarget {
		if out.Target, ok = list(); !ok {
			return bad("bad target")
		}
		if out.Target == nil {
			out.Target = []string{}
		}
	}
	if out.Dead, ok = list(); !ok {
		return bad("bad dead list")
	}
	if out.Retired, ok = list(); !ok {
		return bad("bad retired list")
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	*m = out
	return nil
}

// sameSet reports whether a and b hold the same IDs, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

// union returns the IDs in a or b, a's first, without duplicates.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, id := range b {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// without returns a without the IDs in drop.
func without(a, drop []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(id string) bool { return slices.Contains(drop, id) })
}

// reserved reports whether key is one of synod's own.
func reserved(key string) bool { return strings.HasPrefix(key, ReservedPrefix) }
