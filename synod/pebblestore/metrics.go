package pebblestore

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
const MeterName = "github.com/protosynod/protosynod/synod/pebblestore"

// WithMeterProvider makes the Store record its metrics through mp (default:
// none; nothing global is ever used). The instruments, prefixed
// "synod.storage.":
//
//   - sync.duration (histogram, s): time of each synced commit, from the
//     call until the WAL fsync that covers it returned (concurrent commits
//     share one fsync, so this is the fsync latency a caller sees, group-commit
//     wait included);
//   - batch.size (histogram): registers written per synced commit (1 for
//     Store, the entries of a StoreBatch);
//   - disk.free (gauge, By): bytes free on the data directory's filesystem
//     (absent when the filesystem cannot tell);
//   - errors (counter): failed writes by kind: "no_space", "io", "corrupt",
//     "canceled" (a write abandoned because its caller gave up);
//   - failures (counter, 0 or 1): the store failed for good (see ErrFailed),
//     by kind;
//   - refused (counter): register writes refused for lack of space before
//     reaching Pebble (a batch counts each register it refuses), by reason: "reserve" (a new key below the reserve) or "floor"
//     (any key below half the reserve); see WithSpaceReserve.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

// storeMetrics is a Store's instruments.
type storeMetrics struct {
	sync     metric.Float64Histogram
	batch    metric.Int64Histogram
	errs     metric.Int64Counter
	failures metric.Int64Counter
	refusals metric.Int64Counter
	reg      metric.Registration
}

func newStoreMetrics(mp metric.MeterProvider, sp *space) (*storeMetrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(MeterName)
	var sm storeMetrics
	var err1, err2 error
	sm.sync, err1 = m.Float64Histogram("synod.storage.sync.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of each synced commit, WAL fsync and group-commit wait included."),
		metric.WithExplicitBucketBoundaries(.00005, .0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1))
	sm.batch, err2 = m.Int64Histogram("synod.storage.batch.size", metric.WithUnit("{register}"),
		metric.WithDescription("Registers written per synced commit."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
	var err3, err4, err5, err6 error
	sm.errs, err3 = m.Int64Counter("synod.storage.errors", metric.WithUnit("{write}"),
		metric.WithDescription("Failed writes, by kind (no_space, io, corrupt, canceled)."))
	sm.failures, err4 = m.Int64Counter("synod.storage.failures", metric.WithUnit("{failure}"),
		metric.WithDescription("The store failed for good and awaits a restart, by kind."))
	sm.refusals, err5 = m.Int64Counter("synod.storage.refused", metric.WithUnit("{write}"),
		metric.WithDescription("Writes refused for lack of disk space, by reason (reserve, floor)."))
	free, err6 := m.Int64ObservableGauge("synod.storage.disk.free", metric.WithUnit("By"),
		metric.WithDescription("Bytes free on the data directory's filesystem."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return nil, fmt.Errorf("%w: pebblestore: meter provider: %w", synod.ErrInvalidConfig, err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if avail, known := sp.free(); known {
			o.ObserveInt64(free, int64(min(avail, 1<<62)))
		}
		return nil
	}, free)
	if err != nil {
		return nil, fmt.Errorf("%w: pebblestore: meter provider: %w", synod.ErrInvalidConfig, err)
	}
	sm.reg = reg
	return &sm, nil
}

// errored counts a failed write of kind.
func (m *storeMetrics) errored(kind string) {
	m.errs.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", kind)))
}

// failed counts the store's failure for good, and the write that met it.
func (m *storeMetrics) failed(kind string) {
	m.errored(kind)
	m.failures.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", kind)))
}

// refused counts n register writes refused for lack of space.
func (m *storeMetrics) refused(reason string, n int) {
	m.refusals.Add(context.Background(), int64(n), metric.WithAttributes(attribute.String("reason", reason)))
}

// close unregisters the gauge callback.
func (m *storeMetrics) close() { _ = m.reg.Unregister() }

// committed records a synced commit of n registers that began at start.
func (m *storeMetrics) committed(start time.Time, n int) {
	ctx := context.Background()
	m.sync.Record(ctx, time.Since(start).Seconds())
	m.batch.Record(ctx, int64(n))
}
