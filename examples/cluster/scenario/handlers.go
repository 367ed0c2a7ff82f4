package scenario

//go:generate protoc --go_out=. --go_opt=paths=source_relative messages.proto

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/actors"
)

// Kinds of the example's grains.
const (
	// MissileKind is the cluster kind of the launch state machine.
	MissileKind = "missile"
	// AccountKind is the cluster kind of bank accounts.
	AccountKind = "account"
)

// SignaturesToLaunch is how many generals must sign before the missile
// launches.
const SignaturesToLaunch = 2

// Refusals of the handlers. Callers match them with errors.Is; each one
// leaves the grain's state unchanged.
var (
	// ErrLaunched refuses a signature or a revocation after the launch.
	ErrLaunched = &actors.HandlerError{Code: "launched", Message: "the missile has already launched"}
	// ErrNotSigned refuses the revocation of a signature that was not given.
	ErrNotSigned = &actors.HandlerError{Code: "not-signed", Message: "that general has not signed"}
	// ErrOverdraft refuses a withdrawal larger than the balance.
	ErrOverdraft = &actors.HandlerError{Code: "overdraft", Message: "insufficient funds"}
	// ErrBadAmount refuses a deposit or withdrawal that is not positive.
	ErrBadAmount = &actors.HandlerError{Code: "bad-amount", Message: "the amount must be positive"}
	// ErrUnknownMessage refuses a message the grain does not understand.
	ErrUnknownMessage = &actors.HandlerError{Code: "unknown-message", Message: "unknown message"}
)

// Missile is the handler of the launch state machine (the Paxos-FSM seed
// article's example): generals Sign and Revoke; the missile launches once
// SignaturesToLaunch generals have signed; a general may revoke before the
// launch but never after, and a signature after the launch is refused. The
// reply is the state after the message.
func Missile(s *LaunchState, msg proto.Message) (*LaunchState, proto.Message, error) {
	next := &LaunchState{}
	if s != nil {
		next = proto.Clone(s).(*LaunchState)
	}
	switch m := msg.(type) {
	case *Sign:
		if next.Launched {
			return s, nil, fmt.Errorf("%s signs: %w", m.General, ErrLaunched)
		}
		if m.General == "" {
			return s, nil, fmt.Errorf("sign without a general: %w", ErrUnknownMessage)
		}
		if !slices.Contains(next.Signed, m.General) {
			next.Signed = append(next.Signed, m.General)
			slices.Sort(next.Signed)
		}
		if len(next.Signed) >= SignaturesToLaunch {
			next.Launched = true
			next.LaunchedBy = slices.Clone(next.Signed)
		}
	case *Revoke:
		if next.Launched {
			return s, nil, fmt.Errorf("%s revokes: %w", m.General, ErrLaunched)
		}
		i := slices.Index(next.Signed, m.General)
		if i < 0 {
			return s, nil, fmt.Errorf("%s revokes: %w", m.General, ErrNotSigned)
		}
		next.Signed = slices.Delete(next.Signed, i, i+1)
	default:
		return s, nil, fmt.Errorf("%T: %w", msg, ErrUnknownMessage)
	}
	return next, proto.Clone(next), nil
}

// Account is the handler of a bank account: Deposit and Withdraw change the
// balance, which never goes below zero. The reply is the state after the
// message.
func Account(s *Balance, msg proto.Message) (*Balance, proto.Message, error) {
	next := &Balance{}
	if s != nil {
		next = proto.Clone(s).(*Balance)
	}
	switch m := msg.(type) {
	case *Deposit:
		if m.Amount <= 0 {
			return s, nil, fmt.Errorf("deposit %d: %w", m.Amount, ErrBadAmount)
		}
		next.Balance += m.Amount
	case *Withdraw:
		if m.Amount <= 0 {
			return s, nil, fmt.Errorf("withdraw %d: %w", m.Amount, ErrBadAmount)
		}
		if m.Amount > next.Balance {
			return s, nil, fmt.Errorf("withdraw %d from %d: %w", m.Amount, next.Balance, ErrOverdraft)
		}
		next.Balance -= m.Amount
	default:
		return s, nil, fmt.Errorf("%T: %w", msg, ErrUnknownMessage)
	}
	next.Operations++
	return next, proto.Clone(next), nil
}
