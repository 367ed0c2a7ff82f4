package natstransport

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// BenchmarkReadVsChange measures, side by side on one key over NATS with
// three Pebble acceptors, a change (one-round-trip path: one accept, one
// fsync per acceptor), a Read (with no disk write when the transport is a
// synod.Reader and the acceptors agree) and a ReadRound (the identity
// change, which writes), interleaved so that the machine's load shifts
// equally on all three. Issue 10's target: read p50 <= 0.5x change p50.
func BenchmarkReadVsChange(b *testing.B) {
	s := natstest.RunServer(b)
	connect := func(t testing.TB) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	h := newHarness(b, connect, 3, pebbleStorage)
	tr, err := NewTransport(connect(b), testCluster)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	c, err := synod.NewClient(synod.RandomProposerID("bench"), h.config(), tr)
	if err != nil {
		b.Fatal(err)
	}
	_, lean := synod.Transport(tr).(synod.Reader)
	b.Logf("transport implements synod.Reader: %v", lean)
	ctx := context.Background()
	if _, err := c.Change(ctx, "k", setValue); err != nil {
		b.Fatal(err)
	}
	var change, read, round []time.Duration
	timed := func(lat *[]time.Duration, f func() error) {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		*lat = append(*lat, time.Since(t0))
	}
	b.ResetTimer()
	for range b.N {
		timed(&change, func() error { _, err := c.Change(ctx, "k", setValue); return err })
		timed(&read, func() error { _, err := c.Read(ctx, "k"); return err })
		timed(&round, func() error { _, err := c.ReadRound(ctx, "k"); return err })
	}
	b.StopTimer()
	p50 := func(lat []time.Duration) float64 {
		slices.Sort(lat)
		return float64(lat[len(lat)/2].Microseconds())
	}
	cp, rp, rr := p50(change), p50(read), p50(round)
	b.ReportMetric(cp, "change-p50-µs")
	b.ReportMetric(rp, "read-p50-µs")
	b.ReportMetric(rr, "readround-p50-µs")
	b.ReportMetric(rp/cp, "read/change")
}
