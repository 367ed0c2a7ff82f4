package natstransport

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/protosynod/protosynod/synod"
)

// Option configures a Transport (NewTransport) or a Service (Serve). Options
// that concern only one of them say so and are ignored by the other.
type Option func(*options)

type options struct {
	prefix        string
	limits        Limits
	logger        *slog.Logger
	workers       int
	queueLen      int
	maxQueueBytes int
	probeTimeout  time.Duration
	meterProvider metric.MeterProvider

	framesInFlight int
	nearEvery      time.Duration
}

func defaultOptions() options {
	return options{
		prefix:        DefaultPrefix,
		limits:        DefaultLimits(),
		logger:        slog.New(slog.DiscardHandler),
		workers:       128,
		queueLen:      32,
		maxQueueBytes: 64 << 20,
		probeTimeout:  time.Second,

		framesInFlight: 1,
		nearEvery:      defaultNearEvery,
	}
}

// WithPrefix sets the first part of the subjects (default "synod"); it may
// have several dot-separated tokens, such as "prod.synod". Proposers and
// acceptors of one cluster must use the same prefix.
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithLimits sets the size limits of the frames this side decodes and of the
// values its Transport sends (default DefaultLimits: 512 KiB values). Keep the
// frames under the NATS server's max_payload (1 MiB by default).
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// WithLogger sets the logger (default: discard). Bad input, error replies and
// dropped replies are logged at Warn or Debug.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithWorkers sets how many workers a Service runs (default 128). Requests
// are spread over them by a hash of the key, so requests for one key are
// handled in arrival order and requests for different keys concurrently,
// which lets the storage group-commit them. Service only.
func WithWorkers(n int) Option { return func(o *options) { o.workers = n } }

// WithQueue bounds a Service's waiting requests: perWorker requests per
// worker and maxBytes bytes of frames in total (defaults 32 and 64 MiB). A
// request that finds the queue full gets an error reply with CodeOverloaded
// and is not applied. Service only.
func WithQueue(perWorker, maxBytes int) Option {
	return func(o *options) { o.queueLen, o.maxQueueBytes = perWorker, maxBytes }
}

// WithProbeTimeout sets how long Serve waits for an answer to each probe of
// the acceptor's own subjects before it subscribes (default 1s). NATS answers
// at once when nobody subscribes; the timeout only runs out when a subscriber
// stays silent or the network is slow, so Serve probes three times before it
// refuses (see Serve). Service only.
func WithProbeTimeout(d time.Duration) Option { return func(o *options) { o.probeTimeout = d } }

// WithFramesInFlight sets how many frames a Transport keeps in flight to one
// acceptor (default 1). Requests that arrive while that many are on their way
// queue for the next frame; more frames in flight mean smaller frames and
// more messages. Transport only.
func WithFramesInFlight(n int) Option { return func(o *options) { o.framesInFlight = n } }

// WithNearness sets how often a Transport measures how far each acceptor is
// (default every 30s; see Transport.Near), besides when it first sends to an
// acceptor and after each reconnect. 0 turns measuring off: Near then
// returns nil, and a thrifty synod.Client picks its subset by its proposer
// ID alone. A measurement sends each acceptor three small messages that it
// answers at once. Transport only.
func WithNearness(every time.Duration) Option { return func(o *options) { o.nearEvery = every } }

func (o *options) validate() error {
	if err := validatePrefix(o.prefix); err != nil {
		return fmt.Errorf("%w: %w", synod.ErrInvalidConfig, err)
	}
	switch {
	case o.workers <= 0:
		return fmt.Errorf("%w: natstransport: %d workers", synod.ErrInvalidConfig, o.workers)
	case o.queueLen <= 0 || o.maxQueueBytes <= 0:
		return fmt.Errorf("%w: natstransport: queue of %d per worker, %d bytes", synod.ErrInvalidConfig, o.queueLen, o.maxQueueBytes)
	case o.framesInFlight <= 0:
		return fmt.Errorf("%w: natstransport: %d frames in flight", synod.ErrInvalidConfig, o.framesInFlight)
	case o.nearEvery < 0:
		return fmt.Errorf("%w: natstransport: nearness interval %v", synod.ErrInvalidConfig, o.nearEvery)
	case o.probeTimeout <= 0:
		return fmt.Errorf("%w: natstransport: probe timeout %v", synod.ErrInvalidConfig, o.probeTimeout)
	case o.limits.maxMessage() < o.limits.maxValue():
		return fmt.Errorf("%w: natstransport: message limit %d below value limit %d", synod.ErrInvalidConfig, o.limits.maxMessage(), o.limits.maxValue())
	}
	return nil
}
