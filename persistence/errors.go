package persistence

import (
	"errors"
	"fmt"
)

var (
	// ErrFenced means another activation of the same actor wrote to the actor's
	// register first: PersistEvent was given an event index other than the
	// register's next index, or PersistSnapshot an index beyond it. The write was
	// not applied. The failing activation is stale; its restart recovers the
	// register's current state.
	ErrFenced = errors.New("persistence: fenced: another activation of the actor wrote first")

	// ErrTooLarge means a write would make the actor's register value larger
	// than the configured limit (WithMaxValueSize). The write was not applied.
	ErrTooLarge = errors.New("persistence: register value too large")

	// ErrCompacted means GetEvents asked for events older than the register's
	// snapshot: PersistSnapshot discarded them. Recovery through protoactor's
	// persistence mixin never asks for them.
	ErrCompacted = errors.New("persistence: events compacted into the snapshot")

	// ErrCorrupt means an actor's register holds a value that is not a valid
	// persistence record. Nothing is served from it and nothing is written over it.
	ErrCorrupt = errors.New("persistence: corrupt register value")

	// ErrCodec means an event or snapshot could not be encoded as an anypb.Any
	// (a nil message, say) or decoded from one (usually: its Go type is not
	// linked into the program, so protoregistry.GlobalTypes does not know it).
	ErrCodec = errors.New("persistence: cannot encode or decode a message")

	// ErrInvalidConfig wraps every configuration validation error of NewProvider.
	ErrInvalidConfig = errors.New("persistence: invalid configuration")
)

// OpError is the value a State panics with when an operation fails: protoactor's
// persistence.ProviderState has no error returns, so failures surface as panics
// that the actor's supervisor handles (see the package documentation). It wraps
// the cause, so errors.Is(err, ErrFenced) or errors.Is(err, synod.ErrUnavailable)
// tell the cases apart, for example in a supervisor's decider.
type OpError struct {
	Op    string // the ProviderState method: "PersistEvent", "GetSnapshot", ...
	Actor string // the actor name the operation was for
	Index int    // the event or snapshot index the operation was given, or -1
	Err   error  // the cause
}

// Error implements error.
func (e *OpError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("persistence: %s actor %q: %v", e.Op, e.Actor, e.Err)
	}
	return fmt.Sprintf("persistence: %s actor %q index %d: %v", e.Op, e.Actor, e.Index, e.Err)
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// errorf wraps sentinel with a formatted context message.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
