package pebblestore

import (
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.opentelemetry.io/otel/metric"
)

// Option configures Open.
type Option func(*options)

type options struct {
	fs       vfs.FS
	logger   *slog.Logger
	identity identity
	pebble   []func(*pebble.Options)

	meterProvider metric.MeterProvider
	reserve       uint64
}

func defaultOptions() options {
	return options{
		fs:     vfs.Default,
		logger: slog.New(slog.DiscardHandler),
	}
}

// WithFS sets the filesystem Pebble runs on (default: the operating system's).
// Tests pass vfs.NewCrashableMem() to simulate crashes or an errorfs.FS to
// inject faults.
func WithFS(fs vfs.FS) Option {
	return func(o *options) { o.fs = fs }
}

// WithLogger sets the logger (default: discard). Pebble's informational events
// (opening, flushes, compactions) are logged at Debug, its errors at Error.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithIdentity binds the data directory to one cluster and acceptor ID. On the
// first Open with an identity the directory records it; afterwards Open under any
// other identity fails with ErrIdentityMismatch. Without WithIdentity, Open
// neither records nor checks one (for tools and tests); Store.Identity reports
// what is recorded. Both names must be non-empty.
func WithIdentity(cluster, acceptorID string) Option {
	return func(o *options) { o.identity = identity{Cluster: cluster, Acceptor: acceptorID} }
}

// WithPebbleOptions lets f adjust Pebble's options (cache and memtable sizes,
// for example) after this package has set its own. Open still forces the WAL on
// and read-write mode, which durability depends on.
func WithPebbleOptions(f func(*pebble.Options)) Option {
	return func(o *options) { o.pebble = append(o.pebble, f) }
}

// WithSpaceReserve sets the disk space reserve in bytes (default 0: none),
// like etcd's space quota and NOSPACE alarm. While the data directory's
// filesystem has less than reserve bytes free, a Store of a key the store
// does not hold yet fails with ErrNoSpace (existing keys are still written,
// so actors keep running and can be deleted); below half of it every write
// fails with ErrNoSpace, keeping the rest for Pebble's flushes and
// compactions. Nothing refused is written. Free space is read at most every
// 100ms, so writing resumes by itself once space is freed. Open refuses to
// start with less than half the reserve (at least 1 MiB) free.
func WithSpaceReserve(bytes uint64) Option {
	return func(o *options) { o.reserve = bytes }
}
