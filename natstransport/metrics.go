package natstransport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/protosynod/protosynod/synod"
)

// MeterName is the OpenTelemetry instrumentation scope of this package's
// instruments (see WithMeterProvider).
const MeterName = "github.com/protosynod/protosynod/natstransport"

// WithMeterProvider makes a Service record its metrics through mp (default:
// none; nothing global is ever used). Service only. The instruments, all
// prefixed "synod.acceptor." and carrying the attribute acceptor (the ID):
//
//   - request.duration (histogram, s): from a request's arrival to its reply's
//     publication, queueing and the storage write included, with attributes
//     op (prepare, accept, ...) and outcome (ok, refused: the acceptor had
//     seen a higher ballot, error: it could not serve the request);
//   - queue.requests and queue.bytes (gauges): requests waiting or in
//     progress, and their bytes;
//   - refused (counter): requests not applied, by reason: "ballot" (a higher
//     ballot was seen; an ordinary Paxos refusal), "overloaded" (the queue was
//     full), "stopping", "probe" (another instance probing this acceptor);
//   - malformed (counter): requests that failed to decode or validate, by op.
//
// The storage's own instruments (write latency, batch sizes) come from the
// storage, e.g. pebblestore.WithMeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

// serviceMetrics is a Service's instruments.
type serviceMetrics struct {
	acceptor  attribute.KeyValue
	duration  metric.Float64Histogram
	refused   metric.Int64Counter
	malformed metric.Int64Counter
	reg       metric.Registration

	// The attribute sets of every request and refusal, built once: an
	// attribute set costs allocations each time it is made, and these are
	// recorded per request. Read-only after construction.
	// Each is a slice of one option, passed on with opts...: a single option
	// passed as a variadic argument would allocate its slice on every call.
	requestAttrs map[string]*[3][]metric.RecordOption // by op: ok, refused, error
	refuseAttrs  map[string][]metric.AddOption        // by reason
}

// Request outcomes, the index into serviceMetrics.requestAttrs' arrays.
var requestOutcomes = [3]string{"ok", "refused", "error"}

// metricOps and refuseReasons are the ops and refusal reasons recorded with
// attribute sets built in advance; others build theirs when recorded.
var (
	metricOps     = []string{opPrepare, opAccept, "read", opInspect, opAdmin}
	refuseReasons = []string{"ballot", "overloaded", "stopping", "probe"}
)

func (m *serviceMetrics) requestOptions(op string, outcome int) []metric.RecordOption {
	if a := m.requestAttrs[op]; a != nil {
		return a[outcome]
	}
	return []metric.RecordOption{metric.WithAttributes(m.acceptor, attribute.String("op", op), attribute.String("outcome", requestOutcomes[outcome]))}
}

// newServiceMetrics creates s's instruments; the queue gauges read s.
func newServiceMetrics(mp metric.MeterProvider, s *Service) (*serviceMetrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(MeterName)
	sm := serviceMetrics{acceptor: attribute.String("acceptor", s.acc.ID())}
	sm.requestAttrs = make(map[string]*[3][]metric.RecordOption, len(metricOps))
	for _, op := range metricOps {
		var a [3][]metric.RecordOption
		for i, outcome := range requestOutcomes {
			a[i] = []metric.RecordOption{metric.WithAttributes(sm.acceptor, attribute.String("op", op), attribute.String("outcome", outcome))}
		}
		sm.requestAttrs[op] = &a
	}
	sm.refuseAttrs = make(map[string][]metric.AddOption, len(refuseReasons))
	for _, reason := range refuseReasons {
		sm.refuseAttrs[reason] = []metric.AddOption{metric.WithAttributes(sm.acceptor, attribute.String("reason", reason))}
	}
	var errs []error
	var err error
	sm.duration, err = m.Float64Histogram("synod.acceptor.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a request's arrival to its reply, by op and outcome."),
		metric.WithExplicitBucketBoundaries(.0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1))
	errs = append(errs, err)
	sm.refused, err = m.Int64Counter("synod.acceptor.refused", metric.WithUnit("{request}"),
		metric.WithDescription("Requests not applied, by reason (ballot, overloaded, stopping, probe)."))
	errs = append(errs, err)
	sm.malformed, err = m.Int64Counter("synod.acceptor.malformed", metric.WithUnit("{request}"),
		metric.WithDescription("Requests that failed to decode or validate, by op."))
	errs = append(errs, err)
	qreq, err := m.Int64ObservableGauge("synod.acceptor.queue.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests waiting or in progress."))
	errs = append(errs, err)
	qbytes, err := m.Int64ObservableGauge("synod.acceptor.queue.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes of the requests waiting or in progress."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: natstransport: meter provider: %w", synod.ErrInvalidConfig, err)
	}
	attrs := metric.WithAttributes(sm.acceptor)
	sm.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s.mu.Lock()
		n, b := s.queued, s.queuedBytes
		s.mu.Unlock()
		o.ObserveInt64(qreq, int64(n), attrs)
		o.ObserveInt64(qbytes, int64(b), attrs)
		return nil
	}, qreq, qbytes)
	if err != nil {
		return nil, fmt.Errorf("%w: natstransport: meter provider: %w", synod.ErrInvalidConfig, err)
	}
	return &sm, nil
}

// request records a request answered: op, time since it arrived, and whether
// the acceptor promised/accepted (ok), refused it, or failed (err != nil).
func (m *serviceMetrics) request(op string, arrived time.Time, ok bool, err error) {
	m.requestTook(op, time.Since(arrived).Seconds(), ok, err)
}

// requestTook is request for a request answered secs after it arrived.
func (m *serviceMetrics) requestTook(op string, secs float64, ok bool, err error) {
	outcome := 0 // ok
	switch {
	case err != nil:
		outcome = 2 // error
	case !ok:
		outcome = 1 // refused
		m.refuse("ballot")
	}
	m.duration.Record(context.Background(), secs, m.requestOptions(op, outcome)...)
}

// refuse counts a request not applied, for reason.
func (m *serviceMetrics) refuse(reason string) {
	opts, ok := m.refuseAttrs[reason]
	if !ok {
		opts = []metric.AddOption{metric.WithAttributes(m.acceptor, attribute.String("reason", reason))}
	}
	m.refused.Add(context.Background(), 1, opts...)
}

// malformedRequest counts a request that failed to decode or validate.
func (m *serviceMetrics) malformedRequest(op string) {
	m.malformed.Add(context.Background(), 1, metric.WithAttributes(m.acceptor, attribute.String("op", op)))
}

// close unregisters the gauges' callback.
func (m *serviceMetrics) close() {
	if m.reg != nil {
		_ = m.reg.Unregister()
	}
}
