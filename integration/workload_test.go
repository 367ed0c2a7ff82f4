package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/synod"
)

// newRand returns a seeded generator.
func newRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))
}

// workloadConfig shapes the load: how many keys, how many of them hot, how
// many workers per proposer, and bounds.
type workloadConfig struct {
	keys, hot int
	workers   int           // per proposer
	maxOps    int           // stop issuing operations after this many
	opTimeout time.Duration // deadline of one operation
	thinkTime time.Duration // upper bound of the random pause between operations
	readShare int           // percent of reads
	casShare  int           // percent of compare-and-sets; the rest are writes
	// deleteShare is the percent of writes that delete the register
	// (synod.Client.Delete): a write of "" in the history, since a deleted
	// register reads empty.
	deleteShare int
	hotPercent  int // percent of operations on hot keys
	// pad, if positive, appends that many filler bytes to every value
	// written (stripped again when read), so values weigh on the disk as
	// the 32 KiB values did while the history stays small.
	pad int
}

func defaultWorkload() workloadConfig {
	return workloadConfig{
		keys: 24, hot: 3, workers: 3, maxOps: 4000, // per fault round
		opTimeout: 3 * time.Second, thinkTime: 8 * time.Millisecond,
		readShare: 30, casShare: 25, hotPercent: 40,
	}
}

// errCASMismatch is the error a CAS change function returns when the
// register does not hold the expected value.
var errCASMismatch = errors.New("integration: cas: register does not hold the expected value")

// workload runs seeded random operations through proposers and records them.
type workload struct {
	cfg     workloadConfig
	rec     *harness.Recorder
	props   []*proposer
	keys    []string
	seed    int64
	ops     atomic.Int64
	clients atomic.Int64 // next recorder client ID

	mu   sync.Mutex
	ok   int
	wake chan struct{} // closed and replaced after every OK operation

	cancel context.CancelFunc
	wg     sync.WaitGroup

	// observe, if set before start, is called after every operation with
	// its error and duration.
	observe func(in harness.Input, err error, took time.Duration)
}

func newWorkload(cfg workloadConfig, rec *harness.Recorder, props []*proposer, seed int64) *workload {
	w := &workload{cfg: cfg, rec: rec, props: props, seed: seed, wake: make(chan struct{})}
	for i := range cfg.keys {
		w.keys = append(w.keys, fmt.Sprintf("k%02d", i))
	}
	return w
}

// start runs the workers until stop or until maxOps operations were issued.
func (w *workload) start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	for i := range len(w.props) * w.cfg.workers {
		client := int(w.clients.Add(1)) - 1
		p := w.props[i%len(w.props)]
		rng := newRand(w.seed + int64(i)*7919)
		w.wg.Go(func() { w.worker(ctx, client, p, rng) })
	}
}

// stop stops the workers and waits for their last operations.
func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *workload) worker(ctx context.Context, client int, p *proposer, rng *rand.Rand) {
	seen := map[string]string{} // last value this worker saw per key
	for seq := 0; ctx.Err() == nil && w.ops.Add(1) <= int64(w.cfg.maxOps); seq++ {
		var key string
		if rng.IntN(100) < w.cfg.hotPercent {
			key = w.keys[rng.IntN(w.cfg.hot)]
		} else {
			key = w.keys[w.cfg.hot+rng.IntN(len(w.keys)-w.cfg.hot)]
		}
		value := fmt.Sprintf("c%d-%d", client, seq)
		var in harness.Input
		switch r := rng.IntN(100); {
		case r < w.cfg.readShare:
			in = harness.Read(key)
		case r < w.cfg.readShare+w.cfg.casShare:
			in = harness.CAS(key, seen[key], value)
		case rng.IntN(100) < w.cfg.deleteShare:
			in = harness.Write(key, "")
		default:
			in = harness.Write(key, value)
		}
		if out, ok := w.do(ctx, client, p, in); ok {
			switch in.Kind {
			case harness.OpRead:
				seen[key] = out.Value
			case harness.OpWrite:
				seen[key] = in.Value
			case harness.OpCAS:
				if out.OK {
					seen[key] = in.Value
				} else {
					seen[key] = out.Value
				}
			}
		}
		if w.cfg.thinkTime > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(rng.Int64N(int64(w.cfg.thinkTime)))):
			}
		}
	}
}

// do runs one operation and records it. For a refused CAS, the returned
// Output's Value holds the register's value (not recorded). It reports
// whether the operation completed OK.
func (w *workload) do(ctx context.Context, client int, p *proposer, in harness.Input) (harness.Output, bool) {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.opTimeout)
	defer cancel()
	pending := w.rec.Call(client, in)
	var (
		v   []byte
		err error
	)
	start := time.Now()
	switch in.Kind {
	case harness.OpRead:
		v, err = p.client.Read(octx, in.Key)
	case harness.OpWrite:
		if in.Value == "" {
			err = p.client.Delete(octx, in.Key)
			break
		}
		v, err = p.client.Change(octx, in.Key, func([]byte) ([]byte, error) { return w.padded(in.Value), nil })
	case harness.OpCAS:
		v, err = p.client.Change(octx, in.Key, func(cur []byte) ([]byte, error) {
			if w.unpad(cur) != in.Old {
				return nil, errCASMismatch
			}
			return w.padded(in.Value), nil
		})
	}
	if w.observe != nil {
		w.observe(in, err, time.Since(start))
	}
	v = []byte(w.unpad(v))
	switch {
	case err == nil:
		switch in.Kind {
		case harness.OpRead:
			pending.Return(harness.Output{Value: string(v)})
		case harness.OpWrite:
			pending.Return(harness.Output{})
		default:
			pending.Return(harness.Output{OK: true})
		}
	case in.Kind == harness.OpCAS && errors.Is(err, errCASMismatch):
		pending.Return(harness.Output{OK: false})
		w.noteOK()
		return harness.Output{Value: string(v)}, true
	case in.Kind == harness.OpRead:
		// A read that did not complete changed nothing.
		pending.Fail(err)
		return harness.Output{}, false
	default:
		switch classify(err) {
		case harness.StatusFailed:
			pending.Fail(err)
		default:
			pending.Indeterminate(err)
		}
		return harness.Output{}, false
	}
	w.noteOK()
	return harness.Output{Value: string(v), OK: true}, true
}

// padded returns value with w.cfg.pad filler bytes after a separator.
func (w *workload) padded(value string) []byte {
	if w.cfg.pad <= 0 {
		return []byte(value)
	}
	b := make([]byte, len(value)+1+w.cfg.pad)
	copy(b, value)
	b[len(value)] = '|'
	for i := len(value) + 1; i < len(b); i++ {
		b[i] = byte('a' + i%26)
	}
	return b
}

// unpad strips what padded added.
func (w *workload) unpad(v []byte) string {
	if w.cfg.pad <= 0 {
		return string(v)
	}
	s, _, _ := strings.Cut(string(v), "|")
	return s
}

// classify maps a Change error to how the operation ended: failed only for
// the errors synod documents as "not applied" (conflict, unavailable, a
// storage failure that is not also indeterminate), indeterminate for
// synod.ErrIndeterminate and anything unknown.
func classify(err error) harness.Status {
	switch {
	case err == nil:
		return harness.StatusOK
	case errors.Is(err, synod.ErrIndeterminate):
		return harness.StatusIndeterminate
	case errors.Is(err, synod.ErrConflict), errors.Is(err, synod.ErrUnavailable), errors.Is(err, synod.ErrStorage):
		return harness.StatusFailed
	default:
		return harness.StatusIndeterminate
	}
}

func (w *workload) noteOK() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ok++
	close(w.wake)
	w.wake = make(chan struct{})
}

// waitOK waits until n more operations than now completed OK.
func (w *workload) waitOK(ctx context.Context, n int) error {
	w.mu.Lock()
	target := w.ok + n
	w.mu.Unlock()
	for {
		w.mu.Lock()
		ok, wake := w.ok, w.wake
		w.mu.Unlock()
		if ok >= target {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d operations completed OK: %w", ok-(target-n), n, context.Cause(ctx))
		}
	}
}

// verifyResume checks that every proposer, without a restart, completes a
// write within bound; the writes go to the key resume-<i> and are recorded.
// It returns the longest time a proposer needed.
func (w *workload) verifyResume(ctx context.Context, t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		longest time.Duration
	)
	for i, p := range w.props {
		key := fmt.Sprintf("resume-%d", i)
		wg.Go(func() {
			client := int(w.clients.Add(1)) - 1
			dctx, cancel := context.WithTimeout(ctx, bound)
			defer cancel()
			for attempt := 0; ; attempt++ {
				in := harness.Write(key, fmt.Sprintf("r%d-%d", client, attempt))
				if _, ok := w.do(dctx, client, p, in); ok {
					mu.Lock()
					longest = max(longest, time.Since(start))
					mu.Unlock()
					return
				}
				if dctx.Err() != nil {
					t.Errorf("proposer %d: no write succeeded within %v of healing", i, bound)
					return
				}
				select {
				case <-dctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
	wg.Wait()
	t.Logf("every proposer completed a write within %v", longest.Round(time.Millisecond))
	return longest
}

// finalReads reads every key once more, retrying until a read succeeds, so
// the checker can compare acknowledged writes with the final state.
func (w *workload) finalReads(ctx context.Context, t *testing.T, bound time.Duration) {
	t.Helper()
	keys := append([]string(nil), w.keys...)
	for i := range w.props {
		keys = append(keys, fmt.Sprintf("resume-%d", i))
	}
	dctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var wg sync.WaitGroup
	for i, key := range keys {
		p := w.props[i%len(w.props)]
		wg.Go(func() {
			client := int(w.clients.Add(1)) - 1
			for {
				if _, ok := w.do(dctx, client, p, harness.Read(key)); ok {
					return
				}
				if dctx.Err() != nil {
					t.Errorf("final read of %s did not succeed within %v", key, bound)
					return
				}
			}
		})
	}
	wg.Wait()
}
