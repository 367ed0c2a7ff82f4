package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"time"

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
//     Store, the entries of a StoreBatch).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

// storeMetrics is a Store's instruments.
type storeMetrics struct {
	sync  metric.Float64Histogram
	batch metric.Int64Histogram
}

func newStoreMetrics(mp metric.MeterProvider) (*storeMetrics, error) {
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
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%w: pebblestore: meter provider: %w", synod.ErrInvalidConfig, err)
	}
	return &sm, nil
}

// committed records a synced commit of n registers that began at start.
func (m *storeMetrics) committed(start time.Time, n int) {
	ctx := context.Background()
	m.sync.Record(ctx, time.Since(start).Seconds())
	m.batch.Record(ctx, int64(n))
}
