package natstransport

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultPrefix is the default first part of every acceptor subject.
const DefaultPrefix = "synod"

// Operation names, the last token of an acceptor subject.
const (
	opPrepare = "prepare"
	opAccept  = "accept"
	opInspect = "inspect"
	opFrame   = "frame"
	opAdmin   = "admin"
)

// ValidateName reports whether s can be a cluster name or an acceptor ID: one
// NATS subject token of at most MaxIDSize bytes of valid UTF-8, without '.',
// '*', '>', whitespace or control characters. kind names s in the error, which
// wraps ErrInvalidID.
func ValidateName(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidID, kind)
	case len(s) > MaxIDSize:
		return fmt.Errorf("%w: %s %.32q... is %d bytes, limit %d", ErrInvalidID, kind, s, len(s), MaxIDSize)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalidID, kind, s)
	}
	for _, c := range s {
		switch {
		case c == '.':
			return fmt.Errorf("%w: %s %q contains '.', which separates subject tokens", ErrInvalidID, kind, s)
		case c == '*' || c == '>':
			return fmt.Errorf("%w: %s %q contains the subject wildcard %q", ErrInvalidID, kind, s, c)
		case unicode.IsSpace(c) || unicode.IsControl(c):
			return fmt.Errorf("%w: %s %q contains whitespace or a control character", ErrInvalidID, kind, s)
		}
	}
	return nil
}

// validatePrefix checks a subject prefix: one or more valid tokens joined by '.'.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("%w: empty subject prefix", ErrInvalidID)
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if err := ValidateName("subject prefix token", tok); err != nil {
			return fmt.Errorf("subject prefix %q: %w", prefix, err)
		}
	}
	return nil
}

// Subjects returns the prepare and accept subjects of an acceptor:
// <prefix>.<cluster>.<acceptorID>.prepare and ...accept. It validates every
// part (see ValidateName).
func Subjects(prefix, cluster, acceptorID string) (prepare, accept string, err error) {
	if err := validatePrefix(prefix); err != nil {
		return "", "", err
	}
	if err := ValidateName("cluster", cluster); err != nil {
		return "", "", err
	}
	if err := ValidateName("acceptor ID", acceptorID); err != nil {
		return "", "", err
	}
	base := prefix + "." + cluster + "." + acceptorID + "."
	return base + opPrepare, base + opAccept, nil
}

// InspectSubject returns the inspect subject of an acceptor:
// <prefix>.<cluster>.<acceptorID>.inspect, validated as Subjects does. It is
// separate from the prepare and accept subjects so that NATS permissions can
// grant inspection alone (publish on <prefix>.<cluster>.*.inspect, subscribe
// on the reply inbox).
func InspectSubject(prefix, cluster, acceptorID string) (string, error) {
	prep, _, err := Subjects(prefix, cluster, acceptorID)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(prep, opPrepare) + opInspect, nil
}

// FrameSubject returns the subject of an acceptor's version-2 frames:
// <prefix>.<cluster>.<acceptorID>.frame. It validates every part (see
// ValidateName).
func FrameSubject(prefix, cluster, acceptorID string) (string, error) {
	prep, _, err := Subjects(prefix, cluster, acceptorID)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(prep, opPrepare) + opFrame, nil
}

// AdminSubject returns the admin subject of an acceptor:
// <prefix>.<cluster>.<acceptorID>.admin, validated as Subjects does. Only
// operators' tools need it: NATS permissions grant it apart from the frame
// subjects proposers use (publish on <prefix>.<cluster>.*.admin).
func AdminSubject(prefix, cluster, acceptorID string) (string, error) {
	prep, _, err := Subjects(prefix, cluster, acceptorID)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(prep, opPrepare) + opAdmin, nil
}
