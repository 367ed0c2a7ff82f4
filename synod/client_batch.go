package synod

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Change batching: the changes of one key in one Client run one round at a
// time. The caller that finds no round of its key running runs one for its
// change at once (no timer: a lone change never waits). Callers that arrive
// while a round runs queue; when it ends, the queued changes still wanted
// (a caller whose context ended while it queued is dropped) run together in
// the next round (Proposer.BeginBatch): their functions are applied in order,
// the result is committed once, and each caller gets its own result or error.
// The round is run by the first of its callers, so every goroutine that runs
// a round waits for exactly that round's outcome. Reads (the identity change)
// batch with reads only, so a read is never indeterminate.

// DefaultMaxBatch is how many changes of one key a Client runs in one round
// at most (see WithMaxBatch).
const DefaultMaxBatch = 256

// WithBatching enables (the default) or disables change batching: with it,
// changes of one key that queue behind a running round of that key in this
// Client run together in the next round, one commit for all of them (see
// Change). Disabled, each change takes a round of its own, one after the
// other.
func WithBatching(on bool) Option {
	return func(o *clientOptions) {
		if on {
			o.maxBatch = DefaultMaxBatch
		} else {
			o.maxBatch = 1
		}
	}
}

// WithMaxBatch bounds how many queued changes of one key run in one round
// (default DefaultMaxBatch); 1 disables batching, less is invalid. Reads
// batch separately, under the same bound.
func WithMaxBatch(n int) Option { return func(o *clientOptions) { o.maxBatch = n } }

// waiter is one call of Change, Read or ReadRound waiting for a round or in
// one. Its fields past wake are guarded by keyQueues.mu until it is taken
// into a round, then written by that round's runner before it wakes it.
type waiter struct {
	ctx   context.Context
	f     ChangeFunc // nil for a read
	start time.Time
	wake  chan struct{} // receives once: a result, or a round to run (lead)

	taken  bool      // in a round (or dropped): no longer queued
	lead   []*waiter // the round this waiter runs, itself first
	value  []byte
	err    error
	rounds int  // attempts of its round
	fast   bool // its round began on the one-round-trip path
	all    bool // its round sends every phase to every acceptor
	settle bool // and waits for every acceptor's reply to its accept
	panic  any  // what f panicked with, if it did
}

// errPanicked is what a change function that panicked returns inside its
// round, so that only its change is skipped; its caller panics afterwards.
var errPanicked = errors.New("synod: change function panicked")

// guarded returns w.f wrapped so that a panic becomes errPanicked and is
// kept in w.panic, to be raised again on w's own goroutine.
func (w *waiter) guarded() ChangeFunc {
	return func(cur []byte) (v []byte, err error) {
		defer func() {
			if p := recover(); p != nil {
				w.panic, v, err = p, nil, errPanicked
			}
		}()
		return w.f(cur)
	}
}

// keyQueues holds, per key with a round running, the waiters queued behind it.
type keyQueues struct {
	mu sync.Mutex
	m  map[string]*keyQueue
}

type keyQueue struct {
	waiting []*waiter
}

// join queues w behind key's running round and reports false, or, when no
// round of key runs, starts one for w alone and reports true.
func (l *keyQueues) join(key string, w *waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]*keyQueue)
	}
	if q := l.m[key]; q != nil {
		w.wake = make(chan struct{}, 1)
		q.waiting = append(q.waiting, w)
		return false
	}
	l.m[key] = &keyQueue{}
	w.taken, w.lead = true, []*waiter{w}
	return true
}

// leave removes w from key's queue if it is still queued and reports whether
// it was: then w's change will not run.
func (l *keyQueues) leave(key string, w *waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.taken {
		return false
	}
	q := l.m[key]
	for i, o := range q.waiting {
		if o == w {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	w.taken = true
	return true
}

// next ends key's round: it drops the queued waiters whose context ended,
// takes the next batch (the first queued waiter and, up to max, the later
// ones of its kind, change or read, in queue order) and hands it to its first
// waiter to run; with nothing queued, key has no round running any more.
func (l *keyQueues) next(key string, max int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.m[key]
	var batch []*waiter
	rest := q.waiting[:0]
	for _, w := range q.waiting {
		switch {
		case w.ctx.Err() != nil:
			w.taken, w.err = true, fmt.Errorf("synod: change %q: %w (%w)", key, ErrUnavailable, w.ctx.Err())
			w.wake <- struct{}{}
		case len(batch) == 0 || len(batch) < max && (batch[0].f == nil) == (w.f == nil):
			w.taken = true
			batch = append(batch, w)
		default:
			rest = append(rest, w)
		}
	}
	clear(q.waiting[len(rest):])
	q.waiting = rest
	if len(batch) == 0 {
		delete(l.m, key)
		return
	}
	batch[0].lead = batch
	batch[0].wake <- struct{}{}
}

// do runs one change (f nil: a read through a round) of key: at once when no
// round of key is running in this Client, otherwise in the next round after
// it, with the other changes queued by then.
func (c *Client) do(ctx context.Context, key string, f ChangeFunc) ([]byte, error) {
	return c.doWaiter(ctx, key, &waiter{ctx: ctx, f: f, start: time.Now()})
}

// readRoundAll is ReadRound with every phase sent to every acceptor of the
// configuration, thrifty phases or not, so that the value reaches every
// acceptor that answers (a rescan brings new acceptors up to date this way).
// With settle its accept also waits (up to the phase timeout) for every
// acceptor's reply, so that the value is stored at each one that answers
// when it returns (garbage collection completes a tombstone this way).
func (c *Client) readRoundAll(ctx context.Context, key string, settle bool) ([]byte, error) {
	return c.doWaiter(ctx, key, &waiter{ctx: ctx, start: time.Now(), all: true, settle: settle})
}

func (c *Client) doWaiter(ctx context.Context, key string, w *waiter) ([]byte, error) {
	f := w.f
	defer func() { c.metrics.done(ctx, f == nil, w.start, w.rounds, w.fast, w.err) }()
	if key == "" {
		w.err = errorf(ErrInvalidRequest, "empty key")
		return nil, w.err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.defaultTimeout)
		defer cancel()
		w.ctx = ctx
	}
	if !c.keys.join(key, w) {
		select {
		case <-w.wake:
		case <-ctx.Done():
			if c.keys.leave(key, w) {
				w.err = fmt.Errorf("synod: change %q: %w (%w)", key, ErrUnavailable, ctx.Err())
				return nil, w.err
			}
			<-w.wake // it is in a round already: its outcome is the round's
		}
	}
	if w.lead != nil {
		c.round(key, w.lead)
		c.keys.next(key, c.opts.maxBatch)
	}
	if w.panic != nil {
		panic(w.panic) // on the caller's goroutine, after its round
	}
	return w.value, w.err
}

// round runs one round for the waiters ws (all changes, or all reads), run
// by ws[0], and sets every waiter's outcome, waking the others.
//
// The round's context is ws[0]'s for a round of one. For a batch it ends at
// the earliest deadline among its waiters (so no caller waits past its own
// deadline) or once every waiter's context ended: a caller whose context
// ends while its change is in a round gets the round's outcome, as the
// change may already be on its way to the acceptors.
func (c *Client) round(key string, ws []*waiter) {
	ctx, cancel := ws[0].ctx, context.CancelFunc(func() {})
	if len(ws) > 1 {
		ctx, cancel = batchContext(ws)
	}
	defer cancel()
	read := ws[0].f == nil
	everyone, settle := false, false // some waiter needs every phase sent to every acceptor
	for _, w := range ws {
		everyone, settle = everyone || w.all, settle || w.settle
	}
	var fs []ChangeFunc
	if !read {
		fs = make([]ChangeFunc, len(ws))
		for i, w := range ws {
			fs[i] = w.guarded()
		}
	}
	c.mu.Lock()
	pr := c.p.BeginBatch(key, fs)
	c.mu.Unlock()
	fast := pr.Status() == StatusApply
	c.metrics.batch(ctx, read, len(ws))
	if read {
		c.metrics.readPath(ctx, false, len(ws))
	}
	var unreached reachWait
	for {
		all := everyone // after a phase timed out, the next ones go to every acceptor too
		for pr.Status() != StatusDone {
			switch pr.Status() {
			case StatusApply:
				pr.Apply()
			case StatusPreparing, StatusAccepting:
				ok, stalled, accepts, cancel := c.phase(ctx, pr, all, settle)
				if pr.Status() == StatusRefused {
					c.metrics.conflict(ctx)
				}
				if !ok || pr.Status() == StatusRefused {
					if !pr.Unsettled() {
						accepts = nil
					}
					if !ok {
						all = true
						if !stalled { // a stalled phase heard a quorum
							c.refreshConfig(ctx) // no quorum answered: are they all gone?
						}
					}
					c.retry(ctx, pr, accepts)
				}
				cancel()
			case StatusRefused:
				c.retry(ctx, pr, nil)
			}
		}
		c.mu.Lock()
		c.p.Complete(pr)
		c.mu.Unlock()
		if _, err := pr.Result(); !notApplied(err) || ctx.Err() != nil ||
			!c.refreshConfig(ctx) && !c.awaitReachable(ctx, key, err, &unreached) {
			break
		}
		// Nothing was applied, and the client found a newer configuration
		// than the one whose acceptors did not answer, or they may be back
		// (reconnected to another NATS server): start again.
		c.mu.Lock()
		pr = c.p.BeginBatch(key, fs)
		c.mu.Unlock()
	}
	_, err := pr.Result()
	if err != nil && (err == ErrIndeterminate || err == ErrUnavailable || isConflict(err) || isStorage(err)) {
		c.opts.logger.Debug("synod: change failed", "key", key, "attempts", pr.Attempts(), "batch", len(ws), "err", err)
		if ctx.Err() != nil {
			err = fmt.Errorf("synod: change %q after %d attempts: %w (%w)", key, pr.Attempts(), err, ctx.Err())
		} else {
			err = fmt.Errorf("synod: change %q after %d attempts: %w", key, pr.Attempts(), err)
		}
	} else {
		err = nil
	}
	for i, w := range ws {
		w.rounds, w.fast = pr.Attempts(), fast
		if err != nil {
			w.err = err
		} else if read {
			w.value, w.err = pr.Result()
		} else {
			w.value, w.err = pr.Outcome(i)
		}
		if i > 0 {
			w.wake <- struct{}{}
		}
	}
}

// unreachableGrace is how long a round whose quorum NATS found unreachable
// ("no responders": ErrNotDelivered) starts again before its change fails
// with ErrUnavailable, at most a quarter of the phase timeout. An acceptor
// whose NATS server went away reconnects to another within milliseconds,
// and its subscription is back a moment later: a change should ride that
// out, while one whose acceptors are down should still fail fast.
const unreachableGrace = 250 * time.Millisecond

// reachWait is the state of a round's wait for unreachable acceptors.
type reachWait struct {
	since time.Time // when a proposal of the round first found them unreachable
	tries int
}

// awaitReachable reports, after a backoff, whether the round should start
// again because err, which applied nothing, says that acceptors were
// unreachable (not that storage failed) and the grace has not run out.
func (c *Client) awaitReachable(ctx context.Context, key string, err error, w *reachWait) bool {
	if !errors.Is(err, ErrNotDelivered) || errors.Is(err, ErrStorage) {
		return false
	}
	now := time.Now()
	if w.since.IsZero() {
		w.since = now
	}
	grace := min(unreachableGrace, c.opts.phaseTimeout/4)
	if now.Sub(w.since) >= grace {
		return false
	}
	w.tries++
	c.mu.Lock()
	d := min(c.backoff(w.tries), grace-now.Sub(w.since))
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		c.opts.logger.Debug("synod: acceptors unreachable; trying again", "key", key, "tries", w.tries, "err", err)
		return true
	}
}

// notApplied reports whether err says that no quorum could be reached and
// nothing was applied: ErrUnavailable, alone or with the acceptors found
// unreachable or failing (not with ErrIndeterminate).
func notApplied(err error) bool {
	return errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrIndeterminate)
}

// batchContext returns the context of a batch's round: it carries ws[0]'s
// values, ends at the earliest deadline among the waiters, and is cancelled
// once every waiter's context ended.
func batchContext(ws []*waiter) (context.Context, context.CancelFunc) {
	dl, _ := ws[0].ctx.Deadline()
	for _, w := range ws[1:] {
		if d, ok := w.ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ws[0].ctx), dl)
	var left atomic.Int64
	left.Store(int64(len(ws)))
	stops := make([]func() bool, len(ws))
	for i, w := range ws {
		stops[i] = context.AfterFunc(w.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
