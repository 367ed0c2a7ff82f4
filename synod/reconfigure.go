package synod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ErrBusy means a reconfiguration or an unfinished step is under way: resume
// it (Reconfigurer.Resume) before starting another, or wait for the operator
// running it.
var ErrBusy = errors.New("synod: a reconfiguration is under way")

// Admin is what a Reconfigurer needs beyond a Transport: calls to one acceptor
// at a time, outside any round. Transports that support membership change
// implement it (synodtest.LocalTransport, natstransport.Transport).
type Admin interface {
	// Install makes acceptor to serve cfg (see Acceptor.Install).
	Install(ctx context.Context, to string, cfg Config) (Config, error)
	// AcceptorConfig returns the configuration acceptor to serves (see
	// Acceptor.Config).
	AcceptorConfig(ctx context.Context, to string) (Config, error)
	// ListKeys returns up to limit keys acceptor to stores after after, in
	// order (see Acceptor.Keys).
	ListKeys(ctx context.Context, to, after string, limit int) ([]string, error)
	// State returns acceptor to's stored state of key (see Acceptor.State).
	State(ctx context.Context, to, key string) (AcceptorState, error)
	// Forget removes key from acceptor to if it is inert below floor (see
	// Acceptor.Forget).
	Forget(ctx context.Context, to, key string, floor uint64) (bool, error)
}

// Progress is one report of a Reconfigurer at work.
type Progress struct {
	Phase    string // "claim", "fence", "rescan", "step done", "collect", "forget", "done"
	Config   Config // the configuration of the step
	Acceptor string // the acceptor concerned, if one is
	Done     int    // keys (or acceptors) done so far in the phase
	Total    int    // keys (or acceptors) in the phase, when known
	Err      error  // a failure being retried
}

// Reconfigurer drives membership changes and garbage collection over a Client
// and an Admin, following the steps of the package doc ("Membership change",
// "Deletion"). Every step is recorded in the MembershipKey register before it
// is taken, so an interrupted run is finished by Resume, from any process.
// The Client must not be shared with other work while a step runs: it adopts
// each configuration as soon as it is fenced.
type Reconfigurer struct {
	c     *Client
	admin Admin
	o     reconfigOptions
}

type reconfigOptions struct {
	progress func(Progress)
	logger   *slog.Logger
	workers  int
	page     int
	retry    time.Duration
}

// ReconfigOption configures a Reconfigurer.
type ReconfigOption func(*reconfigOptions)

// WithProgress sets a function called with every progress report (default:
// none). It is called from the Reconfigurer's goroutines, one at a time.
func WithProgress(f func(Progress)) ReconfigOption {
	return func(o *reconfigOptions) { o.progress = f }
}

// WithReconfigLogger sets the logger (default: discard).
func WithReconfigLogger(l *slog.Logger) ReconfigOption {
	return func(o *reconfigOptions) { o.logger = l }
}

// WithRescanWorkers sets how many keys a rescan, and each pass of a garbage
// collection, works on at once (default 16).
func WithRescanWorkers(n int) ReconfigOption { return func(o *reconfigOptions) { o.workers = n } }

// NewReconfigurer returns a Reconfigurer using c to run rounds and admin to
// reach single acceptors.
func NewReconfigurer(c *Client, admin Admin, opts ...ReconfigOption) (*Reconfigurer, error) {
	if c == nil || admin == nil {
		return nil, errorf(ErrInvalidConfig, "reconfigurer: nil client or admin")
	}
	o := reconfigOptions{logger: slog.New(slog.DiscardHandler), workers: 16, page: 1000, retry: 50 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	if o.workers < 1 {
		return nil, errorf(ErrInvalidConfig, "reconfigurer: %d rescan workers", o.workers)
	}
	return &Reconfigurer{c: c, admin: admin, o: o}, nil
}

var progressMu sync.Mutex

func (r *Reconfigurer) report(p Progress) {
	if r.o.progress != nil {
		progressMu.Lock()
		defer progressMu.Unlock()
		r.o.progress(p)
	}
}

// discover asks the acceptors of the client's configuration (and of every
// newer one they name) for their configuration, and adopts the newest.
func (r *Reconfigurer) discover(ctx context.Context) {
	asked := map[string]bool{}
	for {
		cfg := r.c.Config()
		newer := false
		for _, id := range cfg.Acceptors {
			if asked[id] {
				continue
			}
			asked[id] = true
			ac, err := r.admin.AcceptorConfig(ctx, id)
			if err == nil && r.c.Adopt(ac) {
				newer = true
			}
		}
		if !newer {
			return
		}
	}
}

// Members returns the cluster's membership record, after adopting the newest
// configuration the acceptors serve. A cluster never reconfigured has no
// record: its Membership is the client's configuration, done.
func (r *Reconfigurer) Members(ctx context.Context) (Membership, error) {
	r.discover(ctx)
	base := r.c.Config()
	v, err := r.c.ReadRound(ctx, MembershipKey)
	if err != nil {
		return Membership{}, fmt.Errorf("synod: read membership: %w", err)
	}
	return decodeMembership(v, base)
}

func decodeMembership(v []byte, base Config) (Membership, error) {
	if len(v) == 0 {
		return Membership{Config: base.Clone(), Done: base.Epoch}, nil
	}
	var m Membership
	if err := m.UnmarshalBinary(v); err != nil {
		return Membership{}, fmt.Errorf("synod: membership record: %w", err)
	}
	return m, nil
}

// update runs a compare-and-set on the membership record: apply sees the
// current record and returns the new one or an error, which ends update
// with the register unchanged. An indeterminate outcome is settled by
// reading the record again: settled reports whether the wanted change is
// there.
func (r *Reconfigurer) update(ctx context.Context, apply func(Membership) (Membership, error), settled func(Membership) bool) (Membership, error) {
	for {
		base := r.c.Config()
		var out Membership
		_, err := r.c.Change(ctx, MembershipKey, func(cur []byte) ([]byte, error) {
			m, err := decodeMembership(cur, base)
			if err != nil {
				return nil, err
			}
			if out, err = apply(m); err != nil {
				return nil, err
			}
			return out.MarshalBinary()
		})
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, ErrIndeterminate) && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrUnavailable) {
			return Membership{}, err
		}
		if ctx.Err() != nil {
			return Membership{}, err
		}
		m, rerr := r.Members(ctx)
		if rerr == nil && settled(m) {
			return m, nil
		}
	}
}

// Reconfigure moves the cluster to the acceptor set target, one safe step
// at a time (see PlanSteps), declaring dead the acceptors in dead (their
// disks lost: they are never waited for and may never return). Acceptors
// target adds must be running, empty, and never members before. It returns
// the final membership. Interrupted, it leaves the record saying where it
// stopped: Resume goes on from there, from any process.
func (r *Reconfigurer) Reconfigure(ctx context.Context, target, dead []string) (Membership, error) {
	m, err := r.Members(ctx)
	if err != nil {
		return m, err
	}
	if m.Busy() {
		if m.Target != nil && sameSet(m.Target, target) {
			return r.run(ctx)
		}
		return m, fmt.Errorf("%w: epoch %d toward %v (resume it first)", ErrBusy, m.Config.Epoch, m.Target)
	}
	dead = union(m.Dead, dead)
	if _, err := PlanSteps(m.Config, target, dead); err != nil {
		return m, err
	}
	for _, id := range target {
		if m.Config.Has(id) {
			continue
		}
		if slices.Contains(m.Retired, id) {
			return m, errorf(ErrInvalidConfig, "acceptor %s was a member before; a former member's ID never rejoins", id)
		}
		if err := r.checkFresh(ctx, id); err != nil {
			return m, err
		}
	}
	for _, id := range dead {
		if slices.Contains(target, id) {
			return m, errorf(ErrInvalidConfig, "acceptor %s is declared dead and cannot stay", id)
		}
	}
	epoch := m.Config.Epoch
	_, err = r.update(ctx, func(cur Membership) (Membership, error) {
		if cur.Config.Epoch != epoch || cur.Busy() {
			return cur, fmt.Errorf("%w: another operator changed the membership", ErrBusy)
		}
		cur.Target, cur.Dead = slices.Clone(target), dead
		return cur, nil
	}, func(cur Membership) bool { return cur.Target != nil && sameSet(cur.Target, target) })
	if err != nil {
		return m, err
	}
	return r.run(ctx)
}

// checkFresh makes sure a new acceptor is up and has served nothing.
func (r *Reconfigurer) checkFresh(ctx context.Context, id string) error {
	ac, err := r.admin.AcceptorConfig(ctx, id)
	if err != nil {
		return fmt.Errorf("synod: new acceptor %s: %w", id, err)
	}
	keys, err := r.admin.ListKeys(ctx, id, "", 1)
	if err != nil {
		return fmt.Errorf("synod: new acceptor %s: %w", id, err)
	}
	if ac.Epoch != 0 || len(keys) != 0 {
		return errorf(ErrInvalidConfig, "new acceptor %s is not empty (epoch %d, %d keys): a new acceptor starts with an empty data directory", id, ac.Epoch, len(keys))
	}
	return nil
}

// Resume finishes what the membership record says is under way: an
// unfinished step, then the rest of the reconfiguration. With nothing under
// way it returns the membership unchanged.
func (r *Reconfigurer) Resume(ctx context.Context) (Membership, error) {
	return r.run(ctx)
}

func (r *Reconfigurer) run(ctx context.Context) (Membership, error) {
	for {
		m, err := r.Members(ctx)
		if err != nil {
			return m, err
		}
		switch {
		case m.Done < m.Config.Epoch:
			if err := r.completeStep(ctx, m); err != nil {
				return m, err
			}
			epoch := m.Config.Epoch
			_, err = r.update(ctx, func(cur Membership) (Membership, error) {
				if cur.Config.Epoch != epoch {
					return cur, fmt.Errorf("%w: epoch moved to %d", ErrBusy, cur.Config.Epoch)
				}
				cur.Done = epoch
				return cur, nil
			}, func(cur Membership) bool { return cur.Done >= epoch })
			if err != nil {
				return m, err
			}
			r.report(Progress{Phase: "step done", Config: m.Config})
		case m.Target != nil && !sameSet(m.Config.Acceptors, m.Target):
			steps, err := PlanSteps(m.Config, m.Target, m.Dead)
			if err != nil {
				return m, err
			}
			next, prev := steps[0], m.Config
			r.report(Progress{Phase: "claim", Config: next})
			_, err = r.update(ctx, func(cur Membership) (Membership, error) {
				if cur.Config.Epoch != prev.Epoch || cur.Done != prev.Epoch {
					return cur, fmt.Errorf("%w: epoch moved to %d", ErrBusy, cur.Config.Epoch)
				}
				cur.Retired = union(cur.Retired, without(prev.Acceptors, next.Acceptors))
				cur.Config, cur.Previous = next, slices.Clone(prev.Acceptors)
				return cur, nil
			}, func(cur Membership) bool { return cur.Config.Epoch >= next.Epoch })
			if err != nil {
				return m, err
			}
		case m.Target != nil:
			m, err = r.update(ctx, func(cur Membership) (Membership, error) {
				if !cur.Busy() {
					return cur, nil
				}
				cur.Target = nil
				return cur, nil
			}, func(cur Membership) bool { return !cur.Busy() })
			if err != nil {
				return m, err
			}
			r.report(Progress{Phase: "done", Config: m.Config})
			return m, nil
		default:
			return m, nil
		}
	}
}

// completeStep fences m.Config on every living acceptor of it and of the
// previous set, then rescans every key under it, unless the step keeps the
// acceptor set (a garbage collection's floor step).
func (r *Reconfigurer) completeStep(ctx context.Context, m Membership) error {
	living := without(union(m.Previous, m.Config.Acceptors), m.Dead)
	if err := r.fence(ctx, m.Config, living); err != nil {
		return err
	}
	if len(m.Previous) == 0 || sameSet(m.Previous, m.Config.Acceptors) {
		return nil
	}
	return r.rescan(ctx, m.Config, without(union(m.Previous, m.Config.Acceptors), m.Dead))
}

// fence installs cfg on every acceptor in ids, retrying each until it
// acknowledges or ctx ends, then makes the client adopt cfg.
func (r *Reconfigurer) fence(ctx context.Context, cfg Config, ids []string) error {
	r.report(Progress{Phase: "fence", Config: cfg, Total: len(ids)})
	for i, id := range ids {
		for {
			_, err := r.admin.Install(ctx, id, cfg)
			if err == nil {
				break
			}
			if errors.Is(err, ErrStaleEpoch) || errors.Is(err, ErrInvalidConfig) {
				return fmt.Errorf("synod: fence %v at %s: %w", cfg, id, err)
			}
			r.report(Progress{Phase: "fence", Config: cfg, Acceptor: id, Done: i, Total: len(ids), Err: err})
			if err := sleep(ctx, r.o.retry); err != nil {
				return fmt.Errorf("synod: fence %v: acceptor %s unreachable: %w", cfg, id, err)
			}
		}
		r.report(Progress{Phase: "fence", Config: cfg, Acceptor: id, Done: i + 1, Total: len(ids)})
	}
	r.c.Adopt(cfg)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// keys returns the union of the keys stored at the acceptors ids, sorted.
func (r *Reconfigurer) keys(ctx context.Context, ids []string) ([]string, error) {
	set := map[string]bool{}
	for _, id := range ids {
		after := ""
		for {
			page, err := r.admin.ListKeys(ctx, id, after, r.o.page)
			if err != nil {
				return nil, fmt.Errorf("synod: list keys of %s: %w", id, err)
			}
			for _, k := range page {
				set[k] = true
			}
			if len(page) < r.o.page {
				break
			}
			after = page[len(page)-1]
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// rescan runs a full round (the identity change) on every key any of ids
// stores, under cfg, retrying each key until it succeeds or ctx ends.
func (r *Reconfigurer) rescan(ctx context.Context, cfg Config, ids []string) error {
	keys, err := r.keys(ctx, ids)
	if err != nil {
		return err
	}
	return r.forKeys(ctx, "rescan", cfg, keys, func(ctx context.Context, k string) error {
		for {
			// To every acceptor, thrifty phases or not: new members catch up.
			_, err := r.c.readRoundAll(ctx, k, false)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil || !(errors.Is(err, ErrConflict) || errors.Is(err, ErrUnavailable)) {
				return fmt.Errorf("synod: rescan %q under %v: %w", k, cfg, err)
			}
			_ = sleep(ctx, r.o.retry)
		}
	})
}

// forKeys runs f on every key of keys, WithRescanWorkers of them at once:
// the work is a round trip or a few per key, so a collection or a rescan of
// many keys is bound by how many are in flight, not by the acceptors. It
// reports phase progress under cfg at the start, every 100 keys and at the
// end. The first error of f ends the run (keys not yet started are left)
// and is returned; ctx's error if ctx ended first.
func (r *Reconfigurer) forKeys(ctx context.Context, phase string, cfg Config, keys []string, f func(ctx context.Context, k string) error) error {
	r.report(Progress{Phase: phase, Config: cfg, Total: len(keys)})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	var (
		mu    sync.Mutex
		done  int
		first error
		wg    sync.WaitGroup
	)
	for range min(r.o.workers, max(len(keys), 1)) {
		wg.Go(func() {
			for k := range work {
				err := f(ctx, k)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				done++
				if err == nil && (done%100 == 0 || done == len(keys)) {
					r.report(Progress{Phase: phase, Config: cfg, Done: done, Total: len(keys)})
				}
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
