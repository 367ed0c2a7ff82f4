package actors

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the options.
const (
	// DefaultKeyPrefix is prepended to every register key.
	DefaultKeyPrefix = "actors/"
	// DefaultDedupWindow is how many senders of requests with IDs (each
	// with its last request and reply) a register remembers.
	DefaultDedupWindow = 256
	// DefaultMaxBatch bounds how many waiting messages one round applies.
	DefaultMaxBatch = 256
	// DefaultRoundTimeout bounds one round (one Change) of an activation.
	DefaultRoundTimeout = 10 * time.Second
)

// Option configures Props.
type Option func(*options)

type options struct {
	key          string
	prefix       string
	codec        Codec
	window       int
	maxBatch     int
	roundTimeout time.Duration
	logger       *slog.Logger
	onQueue      func(pending int) // test hook: a message was queued
}

func defaultOptions() options {
	return options{
		prefix:       DefaultKeyPrefix,
		window:       DefaultDedupWindow,
		maxBatch:     DefaultMaxBatch,
		roundTimeout: DefaultRoundTimeout,
		logger:       slog.New(slog.DiscardHandler),
	}
}

// WithKey sets the register key (after the prefix) of every activation of
// the Props, instead of the grain's cluster identity or the actor's name.
func WithKey(key string) Option { return func(o *options) { o.key = key } }

// WithKeyPrefix sets the prefix of register keys (default
// DefaultKeyPrefix), so several applications can share acceptors.
func WithKeyPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithCodec sets the state codec (default: Protobuf when the state type is
// a protobuf message, Msgpack otherwise). The codec's name is stored in the
// register; an activation refuses a state written by another codec.
func WithCodec(c Codec) Option { return func(o *options) { o.codec = c } }

// WithDedupWindow sets how many senders of requests with IDs the register
// remembers, each with its last request and reply (default
// DefaultDedupWindow); when more senders come, the one recorded longest ago
// is forgotten. A request retried after more than n other senders reached
// the actor may apply twice. Each active sender costs one entry: a one-shot
// ID (not made by Request) is a sender of its own. The register grows by up
// to n replies: keep replies small.
func WithDedupWindow(n int) Option { return func(o *options) { o.window = n } }

// WithMaxBatch bounds how many waiting messages one round applies (default
// DefaultMaxBatch). 1 disables mailbox batching: one round per message.
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = n } }

// WithRoundTimeout bounds each round (default DefaultRoundTimeout). A round
// that times out after its value may have been accepted replies
// synod.ErrIndeterminate to each of its messages.
func WithRoundTimeout(d time.Duration) Option { return func(o *options) { o.roundTimeout = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func (o *options) validate() error {
	switch {
	case o.window < 1:
		return fmt.Errorf("%w: dedup window %d < 1", ErrInvalidConfig, o.window)
	case o.maxBatch < 1:
		return fmt.Errorf("%w: max batch %d < 1", ErrInvalidConfig, o.maxBatch)
	case o.roundTimeout <= 0:
		return fmt.Errorf("%w: round timeout %v not positive", ErrInvalidConfig, o.roundTimeout)
	case o.codec == nil:
		return fmt.Errorf("%w: nil codec", ErrInvalidConfig)
	case o.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
	}
	return nil
}
