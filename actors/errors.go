package actors

import (
	"errors"
	"fmt"

	"github.com/protosynod/protosynod/synod"
)

var (
	// ErrInvalidConfig wraps every configuration error of Props.
	ErrInvalidConfig = errors.New("actors: invalid configuration")

	// ErrHandler matches every error a handler returned (and every
	// *HandlerError), as opposed to protocol outcomes such as
	// synod.ErrIndeterminate. The message was not applied: the state is
	// unchanged.
	ErrHandler = errors.New("actors: handler refused the message")

	// ErrPanic matches the error of a handler that panicked. The message was
	// not applied: the state is unchanged. It also matches ErrHandler.
	ErrPanic = errors.New("actors: handler panicked")

	// ErrStopped means the activation stopped before it ran the message: the
	// message was not applied, so it may be sent again.
	ErrStopped = errors.New("actors: activation stopped before running the message")

	// ErrInvalid means the message or the register's value is unusable: the
	// message is not a protobuf message, the state does not decode or was
	// written by another codec, or a reply is of an unexpected type. Nothing
	// was applied.
	ErrInvalid = errors.New("actors: invalid message or state")

	// ErrNoReply means no reply came back before the request's deadline. The
	// message may or may not have been applied, so errors carrying it also
	// match synod.ErrIndeterminate: send it again with the same request ID
	// (see RequestError) to apply it exactly once.
	ErrNoReply = errors.New("actors: no reply before the deadline")

	// ErrNoActor means the request could not be delivered: the PID is dead
	// or no member hosts the grain. The message was not applied.
	ErrNoActor = errors.New("actors: no actor to deliver the request to")
)

// HandlerError is an error that a handler returns to refuse a message, with a
// stable Code that survives the trip back to the caller. Declare sentinels
// as HandlerErrors and return them, wrapped or not:
//
//	var ErrOverdraft = &actors.HandlerError{Code: "overdraft", Message: "insufficient funds"}
//	...
//	return s, nil, fmt.Errorf("withdraw %d from %d: %w", n, s.Balance, ErrOverdraft)
//
// The caller's error then matches errors.Is(err, ErrOverdraft) (same Code)
// and errors.Is(err, actors.ErrHandler). A handler may return any other
// error too; the caller then gets a *HandlerError with an empty Code and the
// error's text.
type HandlerError struct {
	// Code identifies the kind of refusal; errors with equal non-empty
	// Codes match each other with errors.Is.
	Code string
	// Message describes the refusal.
	Message string
	// Panic is set on the caller's side when the handler panicked.
	Panic bool
}

// Error implements error.
func (e *HandlerError) Error() string {
	switch {
	case e.Panic:
		return "actors: handler panicked: " + e.Message
	case e.Code == "":
		return "actors: handler: " + e.Message
	}
	return fmt.Sprintf("actors: handler: %s (%s)", e.Message, e.Code)
}

// Is makes errors.Is match ErrHandler, ErrPanic for panics, and any
// *HandlerError with the same non-empty Code.
func (e *HandlerError) Is(target error) bool {
	if t, ok := target.(*HandlerError); ok {
		return t.Code != "" && t.Code == e.Code
	}
	return target == ErrHandler || (target == ErrPanic && e.Panic)
}

// RequestError is the error of Request and Read. ID is the request ID the
// message was sent with: after an error matching synod.ErrIndeterminate, send
// the same message again WithRequestID(ID) and the actor applies it at most
// once (as long as fewer than the dedup window's number of other senders
// reached the actor in between).
type RequestError struct {
	// ID is the request ID the message carried.
	ID string
	// Target names the PID or grain the request went to.
	Target string
	// Err is the reason: a *HandlerError, an error matching a synod or actors
	// sentinel.
	Err error
}

// Error implements error.
func (e *RequestError) Error() string {
	return fmt.Sprintf("actors: request %s to %s: %v", e.ID, e.Target, e.Err)
}

// Unwrap returns Err.
func (e *RequestError) Unwrap() error { return e.Err }

// replyError is a protocol error that came back in an ErrorReply.
type replyError struct {
	code   ErrorCode
	reason string
	msg    string
}

func (e *replyError) Error() string { return e.msg }

// Reasons an INDETERMINATE ErrorReply may carry: acceptors' storage failed.
const (
	reasonStorage = "storage"
	reasonNoSpace = "no_space"
)

// Is matches the sentinel of e's code (see ErrorReply.Err).
func (e *replyError) Is(target error) bool {
	switch e.code {
	case ErrorCode_ERROR_CODE_INDETERMINATE:
		return target == synod.ErrIndeterminate ||
			(target == synod.ErrStorage && (e.reason == reasonStorage || e.reason == reasonNoSpace)) ||
			(target == synod.ErrNoSpace && e.reason == reasonNoSpace)
	case ErrorCode_ERROR_CODE_UNAVAILABLE:
		return target == synod.ErrUnavailable
	case ErrorCode_ERROR_CODE_CONFLICT:
		return target == synod.ErrConflict
	case ErrorCode_ERROR_CODE_STOPPED:
		return target == ErrStopped
	case ErrorCode_ERROR_CODE_STORAGE:
		return target == synod.ErrStorage
	case ErrorCode_ERROR_CODE_NO_SPACE:
		return target == synod.ErrStorage || target == synod.ErrNoSpace
	case ErrorCode_ERROR_CODE_UNSPECIFIED, ErrorCode_ERROR_CODE_INVALID:
		return target == ErrInvalid
	}
	// A code this version does not know (a newer peer's) says nothing about
	// whether the message was applied: the only safe reading is "maybe".
	return target == synod.ErrIndeterminate
}

// Err returns the Go error that r stands for: a *HandlerError for handler
// refusals and panics, otherwise an error matching synod.ErrIndeterminate,
// synod.ErrUnavailable, synod.ErrConflict, synod.ErrStorage (and
// synod.ErrNoSpace for NO_SPACE), ErrStopped or ErrInvalid. An
// INDETERMINATE reply whose Reason names a storage failure matches
// synod.ErrStorage (and synod.ErrNoSpace) too. A code this version does not
// know matches synod.ErrIndeterminate: it may or may not have been applied.
// It returns nil for a nil r.
func (r *ErrorReply) Err() error {
	if r == nil {
		return nil
	}
	switch r.Code {
	case ErrorCode_ERROR_CODE_HANDLER:
		return &HandlerError{Code: r.Reason, Message: r.Message}
	case ErrorCode_ERROR_CODE_PANIC:
		return &HandlerError{Code: r.Reason, Message: r.Message, Panic: true}
	}
	return &replyError{code: r.Code, reason: r.Reason, msg: r.Message}
}

// handlerReply is the reply to a message whose handler returned err.
func handlerReply(err error) *ErrorReply {
	r := &ErrorReply{Code: ErrorCode_ERROR_CODE_HANDLER, Message: err.Error()}
	var he *HandlerError
	if errors.As(err, &he) {
		r.Reason = he.Code
		if he.Panic {
			r.Code = ErrorCode_ERROR_CODE_PANIC
		}
	}
	return r
}

// panicReply is the reply to a message whose handler panicked with v.
func panicReply(v any) *ErrorReply {
	return &ErrorReply{Code: ErrorCode_ERROR_CODE_PANIC, Message: fmt.Sprint(v)}
}

// protocolReply is the reply to every message of a round that ended with err.
func protocolReply(err error) *ErrorReply {
	r := &ErrorReply{Message: err.Error()}
	switch {
	case errors.Is(err, synod.ErrIndeterminate):
		r.Code = ErrorCode_ERROR_CODE_INDETERMINATE
		switch {
		case errors.Is(err, synod.ErrNoSpace):
			r.Reason = reasonNoSpace
		case errors.Is(err, synod.ErrStorage):
			r.Reason = reasonStorage
		}
	case errors.Is(err, synod.ErrNoSpace):
		r.Code = ErrorCode_ERROR_CODE_NO_SPACE
	case errors.Is(err, synod.ErrStorage):
		r.Code = ErrorCode_ERROR_CODE_STORAGE
	case errors.Is(err, synod.ErrConflict):
		r.Code = ErrorCode_ERROR_CODE_CONFLICT
	case errors.Is(err, synod.ErrUnavailable), errors.Is(err, synod.ErrClosed):
		r.Code = ErrorCode_ERROR_CODE_UNAVAILABLE
	case errors.Is(err, ErrStopped):
		r.Code = ErrorCode_ERROR_CODE_STOPPED
	case errors.Is(err, ErrInvalid), errors.Is(err, synod.ErrInvalidRequest), errors.Is(err, synod.ErrInvalidConfig):
		r.Code = ErrorCode_ERROR_CODE_INVALID
	default:
		// An error we cannot classify says nothing about whether the round
		// committed: the only safe answer is "maybe".
		r.Code = ErrorCode_ERROR_CODE_INDETERMINATE
	}
	return r
}
