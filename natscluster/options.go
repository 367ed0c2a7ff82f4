package natscluster

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults for the provider's options.
const (
	// DefaultSubjectPrefix is the first subject token of every membership
	// subject.
	DefaultSubjectPrefix = "protoactor"

	// DefaultHeartbeatInterval is how often a member announces itself.
	DefaultHeartbeatInterval = 500 * time.Millisecond

	// DefaultTTL is how long a member stays in the topology after its last
	// heartbeat.
	DefaultTTL = 3 * time.Second

	// DefaultJoinWindow is how long StartMember and StartClient collect
	// answers to their hello before publishing the first topology.
	DefaultJoinWindow = 200 * time.Millisecond
)

// Option configures a Provider.
type Option func(*options)

type options struct {
	prefix     string
	interval   time.Duration
	ttl        time.Duration
	joinWindow time.Duration
	logger     *slog.Logger
}

func defaultOptions() options {
	return options{
		prefix:     DefaultSubjectPrefix,
		interval:   DefaultHeartbeatInterval,
		ttl:        DefaultTTL,
		joinWindow: DefaultJoinWindow,
		logger:     slog.New(slog.DiscardHandler),
	}
}

// WithSubjectPrefix sets the subject prefix (default [DefaultSubjectPrefix]).
// It may contain dots but no wildcards, whitespace or empty tokens.
// Providers only see each other when they use the same prefix and cluster
// name.
func WithSubjectPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// WithHeartbeatInterval sets how often a member publishes its heartbeat
// (default [DefaultHeartbeatInterval]). It must be positive and shorter than
// the TTL.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(o *options) { o.interval = d }
}

// WithTTL sets how long a member stays in the topology after its last
// heartbeat (default [DefaultTTL]). It must be longer than the heartbeat
// interval; three or more intervals tolerate lost heartbeats. The TTL is
// sent with every heartbeat, and receivers expire a member by the TTL it
// announced, so members with different settings agree on each other.
func WithTTL(d time.Duration) Option {
	return func(o *options) { o.ttl = d }
}

// WithJoinWindow sets how long StartMember and StartClient wait for the
// existing members to answer the hello before they publish the first
// topology and return (default [DefaultJoinWindow]). Zero publishes at once,
// and the topology then grows as heartbeats arrive.
func WithJoinWindow(d time.Duration) Option {
	return func(o *options) { o.joinWindow = d }
}

// WithLogger sets the logger for membership changes and dropped messages.
// The default discards everything. A nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

func (o options) validate() error {
	if err := validSubjectPart(o.prefix); err != nil {
		return fmt.Errorf("%w: subject prefix: %w", ErrInvalidConfig, err)
	}
	if o.interval <= 0 {
		return fmt.Errorf("%w: heartbeat interval %v is not positive", ErrInvalidConfig, o.interval)
	}
	if o.ttl <= o.interval {
		return fmt.Errorf("%w: TTL %v is not longer than the heartbeat interval %v", ErrInvalidConfig, o.ttl, o.interval)
	}
	if o.joinWindow < 0 {
		return fmt.Errorf("%w: join window %v is negative", ErrInvalidConfig, o.joinWindow)
	}
	return nil
}

// validSubjectPart accepts one or more dot-separated literal NATS subject
// tokens.
func validSubjectPart(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if strings.ContainsAny(s, "*> \t\r\n") {
		return fmt.Errorf("%q contains a wildcard or whitespace", s)
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return fmt.Errorf("%q has an empty token", s)
		}
	}
	return nil
}
