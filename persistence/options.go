package persistence

import (
	"log/slog"
	"time"
)

// Default option values.
const (
	// DefaultSnapshotInterval is the snapshot interval GetSnapshotInterval
	// reports unless WithSnapshotInterval sets another.
	DefaultSnapshotInterval = 100
	// DefaultKeyPrefix is prepended to an actor's name to form its register key.
	DefaultKeyPrefix = "persistence/"
	// DefaultTimeout bounds each register operation.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxValueSize bounds the encoded register value of one actor.
	DefaultMaxValueSize = 512 << 10
)

type options struct {
	snapshotInterval int
	keyPrefix        string
	keyFunc          func(actorName string) string
	timeout          time.Duration
	maxValueSize     int
	logger           *slog.Logger
}

func defaultOptions() options {
	return options{
		snapshotInterval: DefaultSnapshotInterval,
		keyPrefix:        DefaultKeyPrefix,
		timeout:          DefaultTimeout,
		maxValueSize:     DefaultMaxValueSize,
		logger:           slog.New(slog.DiscardHandler),
	}
}

func (o options) validate() error {
	switch {
	case o.snapshotInterval <= 0:
		return errorf(ErrInvalidConfig, "snapshot interval %d: must be positive", o.snapshotInterval)
	case o.timeout <= 0:
		return errorf(ErrInvalidConfig, "timeout %v: must be positive", o.timeout)
	case o.maxValueSize <= 0:
		return errorf(ErrInvalidConfig, "max value size %d: must be positive", o.maxValueSize)
	case o.logger == nil:
		return errorf(ErrInvalidConfig, "nil logger")
	}
	return nil
}

// Option configures a Provider.
type Option func(*options)

// WithSnapshotInterval sets the snapshot interval the provider reports to
// protoactor's persistence mixin (default DefaultSnapshotInterval): the mixin
// asks the actor for a snapshot at every event index divisible by n. An actor's
// register holds the events since its latest snapshot, so n bounds its size.
func WithSnapshotInterval(n int) Option { return func(o *options) { o.snapshotInterval = n } }

// WithKeyPrefix sets the prefix of register keys (default DefaultKeyPrefix):
// the register of actor name is prefix+name.
func WithKeyPrefix(prefix string) Option { return func(o *options) { o.keyPrefix = prefix } }

// WithKeyFunc sets how an actor's name maps to its register key, replacing
// the prefix scheme of WithKeyPrefix. Use it when an actor's name is not
// stable across activations: a cluster grain's name (its Self().Id) carries a
// node-local suffix, so two activations of one grain would otherwise write
// to different registers and neither fence nor recover each other (see the
// package documentation). f must return a non-empty key.
func WithKeyFunc(f func(actorName string) string) Option {
	return func(o *options) { o.keyFunc = f }
}

// WithTimeout bounds each register operation (default DefaultTimeout). An
// operation that runs out of time panics with synod.ErrUnavailable,
// synod.ErrConflict or, for a write, possibly synod.ErrIndeterminate.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithMaxValueSize bounds the encoded size in bytes of one actor's register
// value (default DefaultMaxValueSize); a write beyond it panics with
// ErrTooLarge. Keep it below the transport's value limit.
func WithMaxValueSize(n int) Option { return func(o *options) { o.maxValueSize = n } }

// WithLogger sets the logger (default: discard). Failures are logged at Warn
// level before the panic that reports them.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
