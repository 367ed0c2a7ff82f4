package pebblestore

import "errors"

var (
	// ErrCorrupt means a stored record failed its checksum or could not be
	// decoded. The record is never served.
	ErrCorrupt = errors.New("pebblestore: corrupt record")

	// ErrIdentityMismatch means the data directory belongs to another cluster or
	// acceptor ID than the one given to Open with WithIdentity.
	ErrIdentityMismatch = errors.New("pebblestore: data directory belongs to another acceptor")

	// ErrFailed means a commit failed after it may have become visible in memory
	// (for example a failed WAL fsync). The Store refuses all further work; reopen
	// the data directory to recover from what is durable.
	ErrFailed = errors.New("pebblestore: store failed; reopen to recover from disk")
)
