package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// errConflict is returned by an engine whose compare-and-set lost a race; the
// workload counts it and moves on, as a client of that engine would.
var errConflict = errors.New("conflict")

// changeFunc applies f to the value of key once.
type changeFunc func(ctx context.Context, key string, f func([]byte) []byte) error

// engine is one system under test. Each worker gets its own client, spread
// over the NATS servers as a real deployment's clients would be.
type engine interface {
	name() string
	client(worker int) changeFunc
	close()
}

// workload is one measured scenario.
type workload struct {
	name     string
	keys     int // keys to spread operations over
	inflight int // concurrent workers
}

// result is what one engine did in one workload.
type result struct {
	ok, conflicts, errs int64
	firstErr            error // a sample of the errors, for the log
	elapsed             time.Duration
	lat                 []time.Duration // of successful operations
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// run drives e with w for d and returns the figures. Each worker picks keys with
// its own seeded generator, so runs are repeatable up to scheduling.
func run(ctx context.Context, e engine, w workload, d time.Duration, valueSize int, seed uint64) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
		ok  atomic.Int64
	)
	value := make([]byte, valueSize)
	start := time.Now()
	for i := range w.inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			change := e.client(i)
			var lat []time.Duration
			var conflicts, errs int64
			var firstErr error
			for ctx.Err() == nil {
				key := fmt.Sprintf("%s-%d", w.name, rng.IntN(w.keys))
				t0 := time.Now()
				err := change(ctx, key, func(old []byte) []byte {
					v := slices.Clone(value)
					if len(old) > 0 && len(v) > 0 {
						v[0] = old[0] + 1
					}
					return v
				})
				switch {
				case err == nil:
					lat = append(lat, time.Since(t0))
					ok.Add(1)
				case errors.Is(err, errConflict):
					conflicts++
				case ctx.Err() != nil:
				default:
					errs++
					if firstErr == nil {
						firstErr = err
					}
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.conflicts += conflicts
			res.errs += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok = ok.Load()
	slices.Sort(res.lat)
	return res
}
