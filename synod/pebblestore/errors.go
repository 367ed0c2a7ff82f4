package pebblestore

import (
	"errors"

	"github.com/protosynod/protosynod/synod"
)

var (
	// ErrCorrupt means a stored record failed its checksum or could not be
	// decoded. The record is never served. It matches synod.ErrStorage.
	ErrCorrupt error = &sentinel{"pebblestore: corrupt record", synod.ErrStorage}

	// ErrIdentityMismatch means the data directory belongs to another cluster or
	// acceptor ID than the one given to Open with WithIdentity.
	ErrIdentityMismatch = errors.New("pebblestore: data directory belongs to another acceptor")

	// ErrFailed means the store failed for good: a commit failed after it may
	// have become visible in memory (a failed WAL write or fsync), Pebble
	// panicked or reported a fatal error, or its background work (a flush, a
	// compaction) failed. The Store refuses all further work; only a new
	// process (or a new Open after Close) recovers, from what is durable. See
	// the package doc, "Storage failures". It matches synod.ErrStorage.
	ErrFailed error = &sentinel{"pebblestore: store failed; restart to recover from disk", synod.ErrStorage}

	// ErrNoSpace means the disk is full, or its free space is below the
	// store's reserve (see WithSpaceReserve). It matches synod.ErrNoSpace and
	// synod.ErrStorage. A write refused for the reserve never reached Pebble;
	// one that hit a full disk comes with ErrFailed.
	ErrNoSpace error = &sentinel{"pebblestore: out of disk space", synod.ErrNoSpace}
)

// sentinel is an error of this package that also matches one of synod's.
type sentinel struct {
	msg  string
	base error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.base }

// failure is an ErrFailed with its cause.
type failure struct {
	msg   string
	cause error // may be nil
}

func (f *failure) Error() string { return ErrFailed.Error() + ": " + f.msg }

func (f *failure) Unwrap() []error {
	if f.cause == nil {
		return []error{ErrFailed}
	}
	return []error{ErrFailed, f.cause}
}
