// Package pebblestore is the durable synod.Storage: acceptor state on
// CockroachDB's Pebble, one record per register key.
//
// # Durability
//
// Every Store commits one Pebble batch with pebble.Sync, so it returns only
// after the write-ahead log is fsynced. Stores are not serialized by this
// package: Pebble's commit pipeline groups the batches that wait for the same
// WAL sync into one fsync (group commit), so many concurrent Stores of different
// keys cost about one fsync together. The synod.Acceptor calls Store
// concurrently for different keys, which is what makes this work. StoreBatch
// commits several keys in one batch.
//
// If a commit fails (for example the WAL fsync returns an error) the write may
// already be visible in memory without being durable, and Pebble's commit
// pipeline cannot continue. The Store then fails for good: that call and every
// later one return an error wrapping ErrFailed, and the process must reopen the
// data directory to recover from what is on disk. Pebble reports other fatal
// errors in background work (flushes, compactions, MANIFEST writes) by logging
// and panicking, as Pebble's own default logger exits the process.
//
// # On-disk format
//
// Register keys are stored under the prefix "d" so that metadata (under "m")
// never collides with them. Each value is a versioned record (see
// encodeState): version byte, flags, both ballots, the value, and a CRC-32C
// over the register key and the record. A record that fails to decode is an
// error wrapping ErrCorrupt; it is never served, and the Acceptor answers
// no request for that key until an operator repairs it.
//
// # Identity
//
// One acceptor ID, one process, one data directory: two processes serving the
// same acceptor ID with different state silently break quorum intersection.
// With WithIdentity, Open records the cluster and acceptor ID in the directory on
// first use and afterwards refuses to open it under another identity
// (ErrIdentityMismatch). Pebble's lock file keeps a second process from opening
// the same directory at the same time.
package pebblestore
