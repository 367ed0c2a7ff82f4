package synod

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// MeterName is the OpenTelemetry instrumentation scope of this package's
// instruments (see WithMeterProvider).
const MeterName = "github.com/protosynod/protosynod/synod"

// WithMeterProvider makes the Client record its metrics through mp (default:
// none; nothing global is ever used). The instruments, all prefixed
// "synod.client.":
//
//   - change.duration (histogram, s): time of each Change and Read, with
//     attributes op ("change", "read") and outcome ("ok", "error" for an
//     error of the change function, "conflict", "unavailable",
//     "indeterminate", "invalid");
//   - change.rounds (histogram): attempts (rounds) each change took: a
//     change batched with others counts its round's attempts;
//   - batch.size (histogram): changes (or reads) each round carried, with
//     attribute op; its count is the rounds run, its sum the changes and
//     reads they carried, so rounds per change is count/sum (see WithBatching);
//   - conflicts (counter): attempts refused because an acceptor had seen a
//     higher ballot (competing proposers);
//   - fast_path (counter): changes that began with the cached one-round-trip
//     accept, with attribute result "hit" (it succeeded in that round) or
//     "fallback" (it needed more);
//   - indeterminate (counter): changes that ended with ErrIndeterminate;
//   - hedges (counter): thrifty phases (see WithThrifty) that sent their
//     request to the acceptors outside their first subset too, with
//     attribute reason ("refused": a reply of the subset was not a yes;
//     "delay": the hedge delay passed; "send": sending to the subset failed);
//   - stalls (counter): phases given up because a quorum answered but split
//     and the other acceptors stayed silent for the stall wait (two hedge
//     delays with thrifty phases, a quarter of the phase timeout without):
//     paused or cut off acceptors; the change retried with every acceptor;
//   - undecided (counter): phases given up at once because every acceptor
//     they were sent to answered without a decision (replies lost with the
//     proposer's NATS connection, overloaded or stopping acceptors); the
//     change retried with every acceptor;
//   - reads (counter): reads by the path they took, attribute path
//     ("quorum": answered by acceptors' agreeing states without a round;
//     "round": a full round).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *clientOptions) { o.meterProvider = mp }
}

// clientMetrics is a Client's instruments. Every method is cheap and safe
// with a no-op provider. The methods record under context.WithoutCancel(ctx):
// the SDK drops measurements made under a done context, and a change that ran
// out its deadline is one worth counting.
type clientMetrics struct {
	duration      metric.Float64Histogram
	rounds        metric.Int64Histogram
	conflicts     metric.Int64Counter
	fastPath      metric.Int64Counter
	indeterminate metric.Int64Counter
	reads         metric.Int64Counter
	batchSize     metric.Int64Histogram
	hedges        metric.Int64Counter
	stalls        metric.Int64Counter
	undecided     metric.Int64Counter
}

func newClientMetrics(mp metric.MeterProvider) (*clientMetrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(MeterName)
	var cm clientMetrics
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	cm.duration, err = m.Float64Histogram("synod.client.change.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of each change and read, by op and outcome."),
		metric.WithExplicitBucketBoundaries(.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10))
	add(err)
	cm.rounds, err = m.Int64Histogram("synod.client.change.rounds", metric.WithUnit("{round}"),
		metric.WithDescription("Rounds (attempts) each change took."),
		metric.WithExplicitBucketBoundaries(1, 2, 3, 4, 6, 8, 12, 16, 32))
	add(err)
	cm.conflicts, err = m.Int64Counter("synod.client.conflicts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts refused because an acceptor had seen a higher ballot."))
	add(err)
	cm.fastPath, err = m.Int64Counter("synod.client.fast_path", metric.WithUnit("{change}"),
		metric.WithDescription("Changes that began with the one-round-trip accept, by result (hit, fallback)."))
	add(err)
	cm.indeterminate, err = m.Int64Counter("synod.client.indeterminate", metric.WithUnit("{change}"),
		metric.WithDescription("Changes whose outcome is unknown (ErrIndeterminate)."))
	add(err)
	cm.reads, err = m.Int64Counter("synod.client.reads", metric.WithUnit("{read}"),
		metric.WithDescription("Reads by the path they took (quorum, round)."))
	add(err)
	cm.batchSize, err = m.Int64Histogram("synod.client.batch.size", metric.WithUnit("{change}"),
		metric.WithDescription("Changes (or reads) each round carried, by op."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256))
	add(err)
	cm.hedges, err = m.Int64Counter("synod.client.hedges", metric.WithUnit("{phase}"),
		metric.WithDescription("Thrifty phases that also sent their request to the acceptors outside their subset, by reason (refused, delay, send)."))
	add(err)
	cm.stalls, err = m.Int64Counter("synod.client.stalls", metric.WithUnit("{phase}"),
		metric.WithDescription("Phases given up because a quorum answered but split and the other acceptors stayed silent for the stall wait."))
	add(err)
	cm.undecided, err = m.Int64Counter("synod.client.undecided", metric.WithUnit("{phase}"),
		metric.WithDescription("Phases given up at once because every acceptor they were sent to answered without a decision."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, errorf(ErrInvalidConfig, "meter provider: %v", err)
	}
	return &cm, nil
}

// The options recorded per change and per round, each a slice of one built
// once and passed on with opts...: a single option passed as a variadic
// argument would allocate its slice on every call.
var (
	attrOpChange  = attribute.String("op", "change")
	attrOpRead    = attribute.String("op", "read")
	fastHit       = []metric.AddOption{metric.WithAttributes(attribute.String("result", "hit"))}
	fastFallback  = []metric.AddOption{metric.WithAttributes(attribute.String("result", "fallback"))}
	readPathQuick = []metric.AddOption{metric.WithAttributes(attribute.String("path", "quorum"))}
	readPathRound = []metric.AddOption{metric.WithAttributes(attribute.String("path", "round"))}
	opChange      = []metric.RecordOption{metric.WithAttributes(attrOpChange)}
	opRead        = []metric.RecordOption{metric.WithAttributes(attrOpRead)}
)

// done records a finished change or read (read when f was nil): its time
// since start, its rounds, whether it began on the fast path, and its outcome.
func (m *clientMetrics) done(ctx context.Context, read bool, start time.Time, rounds int, fast bool, err error) {
	ctx = context.WithoutCancel(ctx)
	outcome := outcomeOf(err)
	m.duration.Record(ctx, time.Since(start).Seconds(), durationAttrs(read, outcome)...)
	if rounds > 0 {
		m.rounds.Record(ctx, int64(rounds))
	}
	if fast {
		if rounds == 1 && err == nil {
			m.fastPath.Add(ctx, 1, fastHit...)
		} else {
			m.fastPath.Add(ctx, 1, fastFallback...)
		}
	}
	if outcome == "indeterminate" {
		m.indeterminate.Add(ctx, 1)
	}
}

// conflict records an attempt refused by a higher ballot.
func (m *clientMetrics) conflict(ctx context.Context) {
	m.conflicts.Add(context.WithoutCancel(ctx), 1)
}

// hedgeReasons are the reason attributes of hedges, by hedgeRefused,
// hedgeSend and hedgeDelay.
var hedgeReasons = [...]metric.AddOption{
	metric.WithAttributes(attribute.String("reason", "refused")),
	metric.WithAttributes(attribute.String("reason", "send")),
	metric.WithAttributes(attribute.String("reason", "delay")),
}

// hedge records a thrifty phase that hedged, for reason why.
func (m *clientMetrics) hedge(ctx context.Context, why int) {
	m.hedges.Add(context.WithoutCancel(ctx), 1, hedgeReasons[why])
}

// stall records a phase given up as stalled.
func (m *clientMetrics) stall(ctx context.Context) {
	m.stalls.Add(context.WithoutCancel(ctx), 1)
}

// undecidedPhase records a phase given up because every acceptor it was sent
// to answered without a decision.
func (m *clientMetrics) undecidedPhase(ctx context.Context) {
	m.undecided.Add(context.WithoutCancel(ctx), 1)
}

// readPath records the path n reads took: quorum (no round) or a full round.
func (m *clientMetrics) readPath(ctx context.Context, quorum bool, n int) {
	ctx = context.WithoutCancel(ctx)
	if quorum {
		m.reads.Add(ctx, int64(n), readPathQuick...)
	} else {
		m.reads.Add(ctx, int64(n), readPathRound...)
	}
}

// batch records a round that carries n changes (or n reads).
func (m *clientMetrics) batch(ctx context.Context, read bool, n int) {
	op := opChange
	if read {
		op = opRead
	}
	m.batchSize.Record(context.WithoutCancel(ctx), int64(n), op...)
}

// outcomes are the values of the outcome attribute (see outcomeOf).
var outcomes = []string{"ok", "indeterminate", "conflict", "unavailable", "invalid", "error"}

// durationOpts holds the change.duration attribute sets of every op and
// outcome, built once: making an attribute set allocates, and one is
// recorded per change.
var durationOpts = func() map[[2]string][]metric.RecordOption {
	m := make(map[[2]string][]metric.RecordOption, 2*len(outcomes))
	for _, op := range []attribute.KeyValue{attrOpChange, attrOpRead} {
		for _, o := range outcomes {
			m[[2]string{op.Value.AsString(), o}] = []metric.RecordOption{metric.WithAttributes(op, attribute.String("outcome", o))}
		}
	}
	return m
}()

func durationAttrs(read bool, outcome string) []metric.RecordOption {
	op := "change"
	if read {
		op = "read"
	}
	return durationOpts[[2]string{op, outcome}]
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrIndeterminate):
		return "indeterminate"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrInvalidConfig):
		return "invalid"
	}
	return "error"
}
