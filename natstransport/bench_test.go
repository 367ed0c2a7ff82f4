package natstransport

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// countingTransport counts prepare broadcasts, to measure how many changes
// took the one-round-trip path, and the requests sent to acceptors (fewer
// with thrifty phases).
type countingTransport struct {
	synod.Transport
	prepares atomic.Int64
	requests atomic.Int64
}

func (c *countingTransport) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	c.prepares.Add(1)
	c.requests.Add(int64(len(to)))
	return c.Transport.Prepare(ctx, to, req, replies)
}

func (c *countingTransport) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	c.requests.Add(int64(len(to)))
	return c.Transport.Accept(ctx, to, req, replies)
}

// benchValue is the 100-byte value every change writes (the BASELINES.md size).
var benchValue = bytes.Repeat([]byte("v"), 100)

func setValue([]byte) ([]byte, error) { return benchValue, nil }

// benchCluster serves three acceptors and returns a client whose transport
// counts prepares. Every party has its own TCP connection to one embedded
// server, as separate processes would.
func benchCluster(b *testing.B, kind storageKind, opts ...synod.Option) (*synod.Client, *countingTransport) {
	s := natstest.RunServer(b)
	connect := func(t testing.TB) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	h := newHarness(b, connect, 3, kind)
	tr, err := NewTransport(connect(b), testCluster)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	ct := &countingTransport{Transport: tr}
	c, err := synod.NewClient(synod.RandomProposerID("bench"), h.config(), ct, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return c, ct
}

// report adds throughput, latency percentiles and the fast-path hit rate.
func report(b *testing.B, elapsed time.Duration, lat []time.Duration, ct *countingTransport) {
	prepares := ct.prepares.Load()
	b.ReportMetric(float64(ct.requests.Load())/float64(len(lat)), "acceptor-reqs/change")
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds())
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "changes/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(100*(1-float64(prepares)/float64(len(lat))), "fastpath-%")
}

func storageKinds() []struct {
	name string
	kind storageKind
} {
	return []struct {
		name string
		kind storageKind
	}{{"pebble", pebbleStorage}, {"memory", memoryStorage}}
}

// BenchmarkSequential changes one key over and over, with the one-round-trip
// path (fast) and without it (two-phase).
func BenchmarkSequential(b *testing.B) {
	for _, st := range storageKinds() {
		for _, fast := range []bool{true, false} {
			name := fmt.Sprintf("store=%s/path=two-phase", st.name)
			if fast {
				name = fmt.Sprintf("store=%s/path=fast", st.name)
			}
			b.Run(name, func(b *testing.B) {
				c, ct := benchCluster(b, st.kind, synod.WithProposerOptions(synod.WithFastPath(fast)))
				ctx := context.Background()
				if _, err := c.Change(ctx, "warmup", setValue); err != nil {
					b.Fatal(err)
				}
				ct.prepares.Store(0)
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					t0 := time.Now()
					if _, err := c.Change(ctx, "k", setValue); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				elapsed := time.Since(start)
				b.StopTimer()
				report(b, elapsed, lat, ct)
			})
		}
	}
}

// BenchmarkManyKeys runs changes on 1,000 keys with 64 in flight; each worker
// owns the keys congruent to its number modulo 64, so no two in-flight changes
// share a key.
func BenchmarkManyKeys(b *testing.B) {
	const (
		keys     = 1000
		inFlight = 64
	)
	for _, st := range storageKinds() {
		b.Run("store="+st.name, func(b *testing.B) {
			c, ct := benchCluster(b, st.kind)
			ctx := context.Background()
			// Warm up: one two-phase change per key fills the fast-path cache.
			var wg sync.WaitGroup
			for w := range inFlight {
				wg.Go(func() {
					for k := w; k < keys; k += inFlight {
						if _, err := c.Change(ctx, fmt.Sprintf("key-%d", k), setValue); err != nil {
							b.Error(err)
						}
					}
				})
			}
			wg.Wait()
			ct.prepares.Store(0)
			var (
				next atomic.Int64
				mu   sync.Mutex
				lat  = make([]time.Duration, 0, b.N)
			)
			b.ResetTimer()
			start := time.Now()
			for w := range inFlight {
				wg.Go(func() {
					mine := make([]time.Duration, 0, b.N/inFlight+1)
					owned := (keys - w + inFlight - 1) / inFlight
					for i := 0; next.Add(1) <= int64(b.N); i++ {
						key := fmt.Sprintf("key-%d", w+(i%owned)*inFlight)
						t0 := time.Now()
						if _, err := c.Change(ctx, key, setValue); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if len(lat) > 0 {
				report(b, elapsed, lat, ct)
			}
		})
	}
}

func BenchmarkCodec(b *testing.B) {
	lim := DefaultLimits()
	req := synod.AcceptRequest{Key: "actor/some-identity", Ballot: b1, Value: benchValue, Next: b2}
	rep := synod.PrepareReply{From: "a1", Key: "actor/some-identity", Ballot: b2, OK: true, Accepted: b1, Value: benchValue}
	reqData := mustEncode(EncodeAcceptRequest(req))
	repData := mustEncode(EncodePrepareReply(rep))
	b.Run("EncodeAcceptRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeAcceptRequest(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeAcceptRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeAcceptRequest(reqData, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EncodePrepareReply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodePrepareReply(rep); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodePrepareReply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodePrepareReply(repData, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTransport measures bare accept phases through Transport and three
// Services over memory storage, without a synod.Client: scatter to three,
// wait for two, as the "scatter to 3, wait for 2" rows of BASELINES.md.
func BenchmarkTransport(b *testing.B) {
	for _, inFlight := range []int{1, 64} {
		b.Run(fmt.Sprintf("in-flight=%d", inFlight), func(b *testing.B) {
			_, ct := benchCluster(b, memoryStorage)
			tr := ct.Transport.(*Transport)
			to := []string{"a0", "a1", "a2"}
			var (
				next atomic.Int64
				wg   sync.WaitGroup
				mu   sync.Mutex
				lat  = make([]time.Duration, 0, b.N)
			)
			b.ResetTimer()
			start := time.Now()
			for w := range inFlight {
				wg.Go(func() {
					key := fmt.Sprintf("k%d", w)
					ch := make(chan synod.AcceptReply, len(to))
					mine := make([]time.Duration, 0, b.N/inFlight+1)
					for i := 1; next.Add(1) <= int64(b.N); i++ {
						t0 := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						req := synod.AcceptRequest{Key: key, Ballot: synod.Ballot{Counter: uint64(i), Proposer: "p"}, Value: benchValue}
						if err := tr.Accept(ctx, to, req, ch); err != nil {
							b.Error(err)
						}
						for got := 0; got < 2; {
							select {
							case r := <-ch:
								if r.Ballot == req.Ballot { // not a late reply to an earlier phase
									got++
								}
							case <-ctx.Done():
								b.Error("no quorum of replies")
								cancel()
								return
							}
						}
						cancel()
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "phases/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()), "p99-µs")
		})
	}
}
