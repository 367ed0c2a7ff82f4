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
	ErrNoSpace error = &storageSentinel{"synod: acceptor storage out of space"}
)

// storageSentinel is a sentinel that also matches ErrStorage.
type storageSentinel struct{ msg string }

func (e *storageSentinel) Error() string        { return e.msg }
func (e *storageSentinel) Is(target error) bool { return target == ErrStorage }

// storageError ends a Proposal whose quorum storage failures put out of reach.
// It matches ErrStorage, the first failure it saw (an ErrNoSpace, say) and,
// when indeterminate, ErrIndeterminate.
type storageError struct {
	phase         string
	failed, n, q  int
	cause         error
	indeterminate bool
}

func (e *storageError) Error() string {
	msg := fmt.Sprintf("synod: %s: storage failed at %d of %d acceptors, a quorum needs %d: %v",
		e.phase, e.failed, e.n, e.q, e.cause)
	if e.indeterminate {
		return ErrIndeterminate.Error() + " (" + msg + ")"
	}
	return msg
}

func (e *storageError) Unwrap() []error {
	errs := []error{ErrStorage, e.cause}
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
