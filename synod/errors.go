package synod

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict means competing proposers kept the change from reaching a
	// quorum before the deadline. The change was not applied.
	ErrConflict = errors.New("synod: conflict with a competing proposer")

	// ErrUnavailable means too few acceptors answered to form a quorum before the
	// deadline. The change was not applied.
	ErrUnavailable = errors.New("synod: no quorum of acceptors available")

	// ErrIndeterminate means the deadline passed after the change's value was sent
	// for acceptance but before a quorum confirmed or refused it: the change may or
	// may not have been applied, now or later. Retry only if the change is idempotent
	// or deduplicated (as the actors package does with request IDs).
	ErrIndeterminate = errors.New("synod: outcome indeterminate; the change may or may not have been applied")

	// ErrInvalidConfig wraps every configuration validation error.
	ErrInvalidConfig = errors.New("synod: invalid configuration")

	// ErrInvalidRequest wraps every malformed request error.
	ErrInvalidRequest = errors.New("synod: invalid request")

	// ErrClosed is returned by calls on a closed component.
	ErrClosed = errors.New("synod: closed")

	// ErrStorage means an acceptor could not serve a request because its
	// storage failed (out of space, an I/O error). A Client whose quorum is
	// out of reach because of such failures ends the change at once with an
	// error matching ErrStorage instead of waiting out its deadline. Alone it
	// means the change was not applied; when the change's value may already
	// have reached an acceptor the error matches ErrIndeterminate as well.
	ErrStorage = errors.New("synod: acceptor storage failed")

	// ErrNoSpace is the ErrStorage of an acceptor that is out of disk space,
	// or below its space reserve. errors.Is(err, ErrStorage) holds for it.
	ErrNoSpace error = &sentinel{"synod: acceptor storage out of space", ErrStorage}

	// ErrNotDelivered, in the Err of a reply, says that the request reached
	// no acceptor and never will (NATS answers "no responders" when nobody
	// serves the acceptor's subject: the acceptor is down): the acceptor
	// neither promised nor accepted it. A Transport must use it only when it
	// knows that; a request that timed out may still arrive. A Client whose
	// quorum is out of reach because acceptors are unreachable (or their
	// storage failed) ends the change with an error matching ErrUnavailable
	// (and ErrIndeterminate when the change's value may have reached an
	// acceptor): when nothing was applied and no storage failed, after
	// starting it again for up to 250 ms (at most a quarter of the phase
	// timeout), as acceptors reconnecting to another NATS server are
	// unreachable for a moment; otherwise at once. errors.Is(err,
	// ErrUnavailable) holds for it.
	ErrNotDelivered error = &sentinel{"synod: request not delivered: no acceptor serves it", ErrUnavailable}

	// ErrReplyLost, in the Err of a reply, says that no reply to the request
	// will come, although the request may have reached the acceptor and taken
	// effect there: the connection that was to carry the reply back is gone
	// (a NATS client that lost its server). It is neither a vote nor a
	// failure. A Client whose phase every asked acceptor has answered, with
	// votes or such replies, without a decision gives the phase up at once,
	// as if it had timed out, instead of waiting out the phase timeout.
	ErrReplyLost = errors.New("synod: reply lost: the request may have reached the acceptor, but its reply will not come")
)

// sentinel is a sentinel that also matches a more general one.
type sentinel struct {
	msg  string
	also error
}

func (e *sentinel) Error() string        { return e.msg }
func (e *sentinel) Is(target error) bool { return target == e.also }

// storageError ends a Proposal whose quorum storage failures or unreachable
// acceptors put out of reach. It matches ErrStorage and the first storage
// failure it saw (an ErrNoSpace, say) if there was one, ErrUnavailable and
// the first ErrNotDelivered reply if there was one, and, when indeterminate,
// ErrIndeterminate.
type storageError struct {
	phase         string
	n, q          int
	failed        int   // storage failures
	cause         error // the first of them
	unreached     int   // requests not delivered
	unreachable   error // the first of them
	indeterminate bool
}

func (e *storageError) Error() string {
	var msg string
	switch {
	case e.unreached == 0:
		msg = fmt.Sprintf("synod: %s: storage failed at %d of %d acceptors, a quorum needs %d: %v",
			e.phase, e.failed, e.n, e.q, e.cause)
	case e.failed == 0:
		msg = fmt.Sprintf("synod: %s: %d of %d acceptors unreachable, a quorum needs %d: %v",
			e.phase, e.unreached, e.n, e.q, e.unreachable)
	default:
		msg = fmt.Sprintf("synod: %s: storage failed at %d and %d unreachable of %d acceptors, a quorum needs %d: %v; %v",
			e.phase, e.failed, e.unreached, e.n, e.q, e.cause, e.unreachable)
	}
	if e.indeterminate {
		return ErrIndeterminate.Error() + " (" + msg + ")"
	}
	return msg
}

func (e *storageError) Unwrap() []error {
	var errs []error
	if e.failed > 0 {
		errs = append(errs, ErrStorage, e.cause)
	}
	if e.unreached > 0 {
		errs = append(errs, ErrUnavailable, e.unreachable)
	}
	if e.indeterminate {
		errs = append(errs, ErrIndeterminate)
	}
	return errs
}

// errorf wraps sentinel with a formatted context message.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// ConflictError reports that an acceptor refused ballot Proposed because it had
// already seen the greater ballot Existing. It matches ErrConflict with errors.Is.
type ConflictError struct {
	Key      string
	Proposed Ballot
	Existing Ballot
}

// Error implements error.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("synod: conflict on %q: ballot %v refused, %v already seen", e.Key, e.Proposed, e.Existing)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
