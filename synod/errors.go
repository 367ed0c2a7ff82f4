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
)

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
