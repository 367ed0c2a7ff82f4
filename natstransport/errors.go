package natstransport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/protosynod/protosynod/synod"
)

var (
	// ErrMalformed means a message is not a well-formed frame of this wire
	// format: bad msgpack, wrong field types or counts, trailing bytes.
	ErrMalformed = errors.New("natstransport: malformed message")

	// ErrVersion means a message carries a wire version this package does not
	// speak.
	ErrVersion = errors.New("natstransport: unsupported wire version")

	// ErrTooLarge means a message, key, proposer ID or value exceeds its limit.
	ErrTooLarge = errors.New("natstransport: too large")

	// ErrInvalidID means a subject prefix, cluster name or acceptor ID cannot
	// be used as a NATS subject token.
	ErrInvalidID = errors.New("natstransport: invalid name")

	// ErrStorage means the acceptor failed to load or store the register (an
	// I/O error, a corrupt record, a store that failed and awaits a restart):
	// the request may or may not have reached its disk, and no reply was given
	// for it. It matches synod.ErrStorage.
	ErrStorage error = &storageSentinel{"natstransport: acceptor storage failed", synod.ErrStorage}

	// ErrNoSpace means the acceptor's storage is out of disk space, or below
	// its space reserve for a key it did not hold yet: the request was not
	// applied, or (a write that hit the full disk) may or may not have reached
	// it. It matches synod.ErrNoSpace and synod.ErrStorage.
	ErrNoSpace error = &storageSentinel{"natstransport: acceptor storage out of space", synod.ErrNoSpace}

	// ErrOverloaded means the acceptor's work queue was full and it dropped the
	// request without applying it.
	ErrOverloaded = errors.New("natstransport: acceptor overloaded")

	// ErrStopping means the acceptor is shutting down and refused the request
	// without applying it.
	ErrStopping = errors.New("natstransport: acceptor stopping")

	// ErrAlreadyServing means another instance already answers on the acceptor's
	// subjects, so this one refuses to start (two instances of one acceptor ID
	// silently break quorum intersection).
	ErrAlreadyServing = errors.New("natstransport: acceptor already served by another instance")

	// ErrRemote matches every error reply from an acceptor, including codes this
	// package does not know.
	ErrRemote = errors.New("natstransport: acceptor error reply")

	// ErrClosed means the Transport or Service was closed.
	ErrClosed = errors.New("natstransport: closed")
)

// Error codes sent in the micro "Nats-Service-Error-Code" header of an error
// reply. They are stable: clients map them back to the sentinels above.
const (
	CodeMalformed      = "400" // ErrMalformed
	CodeInvalidConfig  = "406" // synod.ErrInvalidConfig (an admin request the acceptor refuses: a conflicting configuration, ...)
	CodeAlreadyServing = "409" // ErrAlreadyServing (answer to a probe)
	CodeStopping       = "410" // ErrStopping
	CodeStaleEpoch     = "412" // the request's epoch is stale; the detail carries the acceptor's configuration
	CodeTooLarge       = "413" // ErrTooLarge
	CodeInvalidRequest = "422" // synod.ErrInvalidRequest
	CodeStorage        = "500" // ErrStorage
	CodeOverloaded     = "503" // ErrOverloaded
	CodeVersion        = "505" // ErrVersion
	CodeNoSpace        = "507" // ErrNoSpace
)

// storageSentinel is a natstransport sentinel that wraps synod's.
type storageSentinel struct {
	msg  string
	base error
}

func (e *storageSentinel) Error() string { return e.msg }
func (e *storageSentinel) Unwrap() error { return e.base }

// codeErrors maps error codes to sentinels, in both directions.
var codeErrors = []struct {
	code string
	err  error
}{
	{CodeMalformed, ErrMalformed},
	{CodeAlreadyServing, ErrAlreadyServing},
	{CodeStopping, ErrStopping},
	{CodeTooLarge, ErrTooLarge},
	{CodeInvalidRequest, synod.ErrInvalidRequest},
	{CodeStorage, ErrStorage},
	{CodeOverloaded, ErrOverloaded},
	{CodeVersion, ErrVersion},
	{CodeNoSpace, ErrNoSpace},
	{CodeStaleEpoch, synod.ErrStaleEpoch},
	{CodeInvalidConfig, synod.ErrInvalidConfig},
}

// errorCode returns the code for err: 507 for an acceptor out of space, 500
// for its other storage failures (a store canceled by Stop included: it may
// have landed), 410 for a closed storage, which applied nothing, else the code of the first sentinel err matches, or 500 for anything
// else (errors the acceptor itself returns).
func errorCode(err error) string {
	switch {
	case errors.Is(err, synod.ErrStaleEpoch):
		return CodeStaleEpoch
	case errors.Is(err, synod.ErrNoSpace):
		return CodeNoSpace
	case errors.Is(err, synod.ErrStorage):
		return CodeStorage
	case errors.Is(err, synod.ErrClosed):
		return CodeStopping
	}
	for _, ce := range codeErrors {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return CodeStorage
}

// codeError returns the sentinel for code, or nil for an unknown code.
func codeError(code string) error {
	for _, ce := range codeErrors {
		if ce.code == code {
			return ce.err
		}
	}
	return nil
}

// RemoteError is an error reply from an acceptor. It matches ErrRemote and,
// through Unwrap, the sentinel of its Code (ErrStorage and synod.ErrStorage for
// CodeStorage, ErrNoSpace, synod.ErrNoSpace and synod.ErrStorage for
// CodeNoSpace, synod.ErrInvalidRequest for CodeInvalidRequest, ...), so
// errors.Is works across NATS.
type RemoteError struct {
	Acceptor    string // the acceptor ID the request was sent to
	Code        string // the Nats-Service-Error-Code header, or the code of an error item
	Description string // the Nats-Service-Error header, or the message of an error item
	Detail      []byte // the detail of an error item (see ItemError); nil otherwise
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("natstransport: acceptor %s replied error %s: %s", e.Acceptor, e.Code, e.Description)
}

// Unwrap returns the sentinel of e.Code, or nil for an unknown code.
func (e *RemoteError) Unwrap() error { return codeError(e.Code) }

// Is makes errors.Is(err, ErrRemote) true.
func (e *RemoteError) Is(target error) bool { return target == ErrRemote }

// wrapf adds context to err with the package prefix once: the text is
// "natstransport: <context>: <err>" with err's own "natstransport: " prefix
// dropped, so that logs do not read "natstransport: decode ...: natstransport:
// malformed message". errors.Is and errors.As see err.
func wrapf(err error, format string, args ...any) error {
	return &wrapped{context: fmt.Sprintf(format, args...), err: err}
}

type wrapped struct {
	context string
	err     error
}

func (e *wrapped) Error() string {
	return "natstransport: " + e.context + ": " + strings.TrimPrefix(e.err.Error(), "natstransport: ")
}

func (e *wrapped) Unwrap() error { return e.err }

// errorDetail returns the detail of err's error item: for a stale epoch, the
// acceptor's configuration in synod.Config's binary encoding.
func errorDetail(err error) []byte {
	var se *synod.StaleEpochError
	if !errors.As(err, &se) {
		return nil
	}
	b, merr := se.Config.MarshalBinary()
	if merr != nil {
		return nil
	}
	return b
}

// itemErr returns the error a Transport delivers for an error item of
// acceptor answering a request of epoch: a *synod.StaleEpochError carrying the
// acceptor's configuration for CodeStaleEpoch (when its detail decodes), else
// a *RemoteError.
func itemErr(acceptor string, epoch uint64, e *ItemError) error {
	if e.Code == CodeStaleEpoch {
		var cfg synod.Config
		if err := cfg.UnmarshalBinary(e.Detail); err == nil {
			return &synod.StaleEpochError{Acceptor: acceptor, Epoch: epoch, Config: cfg}
		}
	}
	return &RemoteError{Acceptor: acceptor, Code: e.Code, Description: e.Message, Detail: e.Detail}
}
