package natstransport

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
)

// BenchmarkCollectGarbage measures a collection over NATS: each iteration
// deletes 500 of 1,500 written keys (untimed) and collects them (timed), so
// the collection examines every key the acceptors store. It reports keys
// examined per second, the rate that bounds a collection over many registers.
func BenchmarkCollectGarbage(b *testing.B) {
	const live, deleted = 1000, 500
	c, ct := benchCluster(b, memoryStorage)
	ctx := context.Background()
	r, err := synod.NewReconfigurer(c, ct.Transport.(*Transport))
	if err != nil {
		b.Fatal(err)
	}
	for i := range live {
		if _, err := c.Change(ctx, "live"+strconv.Itoa(i), setValue); err != nil {
			b.Fatal(err)
		}
	}
	var examined int
	var took time.Duration
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		for i := range deleted {
			k := "del" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
			if _, err := c.Change(ctx, k, setValue); err != nil {
				b.Fatal(err)
			}
			if err := c.Delete(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		res, err := r.CollectGarbage(ctx)
		took += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Collected != deleted {
			b.Fatalf("collected %d of %d deleted keys: %+v", res.Collected, deleted, res)
		}
		examined += res.Keys
	}
	b.ReportMetric(float64(examined)/took.Seconds(), "keys/s")
}
