// Package metrictest reads OpenTelemetry instruments back in tests: a
// MeterProvider with a manual reader, and the value of an instrument's data
// points filtered by attributes.
package metrictest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Reader is a MeterProvider whose measurements a test collects on demand.
type Reader struct {
	// Provider is the MeterProvider to pass to WithMeterProvider options.
	Provider *sdkmetric.MeterProvider
	r        *sdkmetric.ManualReader
}

// New returns a Reader.
func New() *Reader {
	r := sdkmetric.NewManualReader()
	return &Reader{Provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)), r: r}
}

// Value is what Get found: N is the sum of counters and gauges or the count
// of histogram observations, Sum the sum of histogram observations (of
// counters and gauges too), Points the number of matching data points.
type Value struct {
	N      float64
	Sum    float64
	Points int
}

// Get collects and returns the data points of the instrument name whose
// attributes include attrs.
func (r *Reader) Get(t testing.TB, name string, attrs ...attribute.KeyValue) Value {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	match := func(set attribute.Set) bool {
		for _, a := range attrs {
			if v, ok := set.Value(a.Key); !ok || v != a.Value {
				return false
			}
		}
		return true
	}
	var v Value
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						v.N, v.Sum, v.Points = v.N+float64(p.Value), v.Sum+float64(p.Value), v.Points+1
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						v.N, v.Sum, v.Points = v.N+float64(p.Value), v.Sum+float64(p.Value), v.Points+1
					}
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						v.N, v.Sum, v.Points = v.N+float64(p.Count), v.Sum+float64(p.Sum), v.Points+1
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						v.N, v.Sum, v.Points = v.N+float64(p.Count), v.Sum+p.Sum, v.Points+1
					}
				}
			default:
				t.Fatalf("metrictest: %s: unsupported data %T", name, m.Data)
			}
		}
	}
	return v
}

// Attrs is shorthand for string attributes: Attrs("op", "read", "outcome", "ok").
func Attrs(kv ...string) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, attribute.String(kv[i], kv[i+1]))
	}
	return out
}
