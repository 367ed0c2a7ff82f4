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

// op is one operation on key by one worker: a change of a register, or a
// message to an actor.
type op func(ctx context.Context, key string) error

// engine is one system under test. Each worker gets its own op, spread over
// the NATS servers as a real deployment's clients would be.
type engine interface {
	name() string
	worker(i, valueBytes int) op
	close()
}

// newValue returns the change every raw workload applies: a fresh value of
// valueBytes bytes whose first byte counts the changes.
func newValue(valueBytes int) func(old []byte) []byte {
	value := make([]byte, valueBytes)
	return func(old []byte) []byte {
		v := slices.Clone(value)
		if len(old) > 0 && len(v) > 0 {
			v[0] = old[0] + 1
		}
		return v
	}
}

// workload is one measured scenario.
type workload struct {
	name     string
	actors   bool // through protoactor actors, not raw registers
	keys     int  // keys (or actors) to spread operations over
	inflight int  // concurrent workers
}

// workloads are every scenario, in the order they run.
var workloads = []workload{
	{name: "sequential", keys: 1, inflight: 1},
	{name: "many-keys", keys: 1000, inflight: 64},
	{name: "hot-key", keys: 1, inflight: 64},
	{name: "actors-many", actors: true, keys: 1000, inflight: 64},
	{name: "actor-hot", actors: true, keys: 1, inflight: 64},
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
func run(ctx context.Context, e engine, w workload, d time.Duration, valueBytes int, seed uint64) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	deadline, _ := ctx.Deadline()
	// over reports whether the run has ended. An operation bounded by the
	// run's deadline may fail a moment before ctx reports it is done, so
	// the clock decides too: such a failure is the run's end, not an error.
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(deadline) }
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
		ok  atomic.Int64
	)
	start := time.Now()
	for i := range w.inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			do := e.worker(i, valueBytes)
			var lat []time.Duration
			var conflicts, errs int64
			var firstErr error
			for !over() {
				key := fmt.Sprintf("%s-%d-%d", w.name, valueBytes, rng.IntN(w.keys))
				t0 := time.Now()
				err := do(ctx, key)
				switch {
				case err == nil:
					lat = append(lat, time.Since(t0))
					ok.Add(1)
				case errors.Is(err, errConflict):
					conflicts++
				case over():
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
