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
// Every WAL file is written in full (with zeros) before Pebble's first record
// goes into it, as Pebble's recycled WALs are: an fdatasync after writing into
// blocks never written before must also commit the file system's journal.
// On ext4 over a virtual disk (the benchmark machine), a sequential synced
// Store took 220–360 µs so against 290–570 µs into Pebble's fresh,
// preallocated WAL (BenchmarkStoreSync/sequential, pairs of runs). A new WAL
// of 110% of the memtable size costs one extra write of that size and one
// sync when it is created; if prewriting fails the WAL is used as it is.
//
// # Storage failures
//
// If a commit fails (for example a WAL write or fsync returns an error) the
// write may already be visible in memory without being durable, and Pebble's
// commit pipeline cannot continue. If a flush or compaction fails (Pebble's
// BackgroundError), Pebble would retry it at once, for ever, and block every
// write once its memtables are full. In both cases the Store fails for good:
// Failed is closed, Err returns the failure, the call that met it and every
// later one return an error matching ErrFailed (and ErrNoSpace when the disk
// was full), and calls stuck inside Pebble return at once. A failed store is
// never used again in the same process, not even after the space is freed:
// recovery is a restart, which reopens the data directory from what is
// durable. synod-acceptor exits non-zero when its store fails, for its
// supervisor to restart it. Every error of this package's storage failures
// matches synod.ErrStorage, so callers fail fast (natstransport codes 500/507).
//
// A panic inside Pebble during Open or a commit (Pebble panics on a failed WAL
// write) is turned into an ErrFailed error; Open never panics on a full disk.
// Open refuses to start, with an error saying why, when the data directory
// cannot be written (a probe file is written, synced and removed) or has too
// little free space (ErrNoSpace).
//
// # Space reserve
//
// WithSpaceReserve keeps Pebble from reaching a full disk in the first place,
// like etcd's space quota: below the reserve, new keys are refused with
// ErrNoSpace while existing keys are still written (actors keep running and
// can be deleted; a StoreBatch refuses only its new keys and stores the others
// in the same sync); below half of it every write is refused, leaving the rest
// to Pebble's flushes and compactions. Refused writes never reach Pebble, and
// writes resume by themselves once space is freed. Free space, refusals and
// errors are metrics (WithMeterProvider). Pebble's own error lines are logged
// at most once per second per cause, with the count of those held back.
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
