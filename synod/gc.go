package synod

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Delete deletes the register key: it writes the register's tombstone, the
// empty value, through a round. Afterwards key reads as empty and can be
// written again as a fresh register. The acceptors keep the tombstone until a
// garbage collection (Reconfigurer.CollectGarbage) removes the key from their
// storage. Errors are those of Change; keys with ReservedPrefix are refused.
func (c *Client) Delete(ctx context.Context, key string) error {
	if reserved(key) {
		return errorf(ErrInvalidRequest, "delete %q: reserved key", key)
	}
	_, err := c.Change(ctx, key, func([]byte) ([]byte, error) { return nil, nil })
	return err
}

// GCResult reports what a garbage collection did.
type GCResult struct {
	Keys      int    // keys examined
	Deleted   int    // keys every living acceptor holds as deleted (candidates)
	Collected int    // candidates confirmed and forgotten
	Removed   int    // register states removed from acceptors' storage
	Skipped   int    // candidates left for a later collection
	Floor     uint64 // the ballot floor of the collection's epoch
	Epoch     uint64 // the collection's epoch, 0 if it needed none
}

// CollectGarbage removes deleted registers from every acceptor's storage, as
// described in the package doc ("Deletion"): it picks the keys every living
// member holds with no value, fences a configuration with the same acceptors
// and a ballot floor above their ballots, confirms that no living member
// holds a value for them below the floor, and has every living member forget
// them. A register whose tombstone reached only some acceptors is first
// completed by a full round. It refuses to run while a reconfiguration is
// under way (ErrBusy). Running it again after an interruption is safe: it
// first finishes the step an interrupted collection left.
func (r *Reconfigurer) CollectGarbage(ctx context.Context) (GCResult, error) {
	var res GCResult
	m, err := r.Members(ctx)
	if err != nil {
		return res, err
	}
	if m.Busy() && m.Target == nil {
		// An interrupted collection's floor step (a reconfiguration has a
		// target): finish it, as Resume would.
		if m, err = r.run(ctx); err != nil {
			return res, err
		}
	}
	if m.Busy() {
		return res, fmt.Errorf("%w: epoch %d toward %v (resume it first)", ErrBusy, m.Config.Epoch, m.Target)
	}
	living := without(m.Config.Acceptors, m.Dead)
	keys, err := r.keys(ctx, living)
	if err != nil {
		return res, err
	}
	res.Keys = len(keys)
	var (
		mu         sync.Mutex // candidates, top, res
		candidates []string
		top        uint64
	)
	err = r.forKeys(ctx, "collect", m.Config, keys, func(ctx context.Context, k string) error {
		if reserved(k) {
			return nil
		}
		empty, stale, t, err := r.deletedState(ctx, living, k)
		if err != nil {
			return err
		}
		if stale {
			// The tombstone is the latest value but some acceptor missed it:
			// a full round writes it back to every acceptor it reaches
			// (all of them, even with thrifty phases).
			if _, err := r.c.readRoundAll(ctx, k, true); err != nil {
				mu.Lock()
				res.Skipped++
				mu.Unlock()
				return nil
			}
			if empty, _, t, err = r.deletedState(ctx, living, k); err != nil {
				return err
			}
		}
		if empty {
			mu.Lock()
			candidates = append(candidates, k)
			top = max(top, t)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	slices.Sort(candidates)
	res.Deleted = len(candidates)
	if len(candidates) == 0 {
		r.report(Progress{Phase: "done", Config: m.Config})
		return res, nil
	}
	next := m.Config.Clone()
	next.Epoch++
	next.Floor = max(m.Config.Floor, top)
	prev := m.Config
	r.report(Progress{Phase: "claim", Config: next})
	_, err = r.update(ctx, func(cur Membership) (Membership, error) {
		if cur.Config.Epoch != prev.Epoch || cur.Busy() {
			return cur, fmt.Errorf("%w: epoch moved to %d", ErrBusy, cur.Config.Epoch)
		}
		cur.Config, cur.Previous = next, prev.Acceptors
		return cur, nil
	}, func(cur Membership) bool { return cur.Config.Epoch >= next.Epoch })
	if err != nil {
		return res, err
	}
	// Fence and record the step; Resume would do the same.
	if _, err := r.run(ctx); err != nil {
		return res, err
	}
	res.Floor, res.Epoch = next.Floor, next.Epoch
	err = r.forKeys(ctx, "forget", next, candidates, func(ctx context.Context, k string) error {
		ok, err := r.confirm(ctx, living, k, next.Floor)
		if err != nil {
			return err
		}
		if !ok {
			mu.Lock()
			res.Skipped++
			mu.Unlock()
			return nil
		}
		removed := 0
		var err2 error
		for _, id := range living {
			ok, err := r.admin.Forget(ctx, id, k, next.Floor)
			if err != nil {
				err2 = fmt.Errorf("synod: forget %q at %s: %w", k, id, err)
				break
			}
			if ok {
				removed++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		res.Removed += removed
		if err2 == nil {
			res.Collected++
		}
		return err2
	})
	if err != nil {
		return res, err
	}
	r.report(Progress{Phase: "done", Config: next, Done: res.Collected, Total: len(candidates)})
	return res, nil
}

// deletedState reads key's state at every living acceptor. empty: none
// holds a value (a deleted register, or promises only). stale: the highest
// accepted state is empty but some acceptor still holds an older value. top
// is the greatest ballot counter any of them holds for key.
func (r *Reconfigurer) deletedState(ctx context.Context, living []string, key string) (empty, stale bool, top uint64, err error) {
	var highest AcceptorState
	empty = true
	for _, id := range living {
		st, err := r.admin.State(ctx, id, key)
		if err != nil {
			return false, false, 0, fmt.Errorf("synod: state of %q at %s: %w", key, id, err)
		}
		if len(st.Value) != 0 {
			empty = false
		}
		if highest.Accepted.Less(st.Accepted) {
			highest = st
		}
		top = max(top, st.Promised.Counter, st.Accepted.Counter)
	}
	return empty, !empty && !highest.Accepted.IsZero() && len(highest.Value) == 0, top, nil
}

// confirm reports whether no living acceptor holds a value for key at or
// below floor. Once the floor is fenced such states cannot change.
func (r *Reconfigurer) confirm(ctx context.Context, living []string, key string, floor uint64) (bool, error) {
	for _, id := range living {
		st, err := r.admin.State(ctx, id, key)
		if err != nil {
			return false, fmt.Errorf("synod: state of %q at %s: %w", key, id, err)
		}
		if st.Accepted.Counter <= floor && len(st.Value) != 0 {
			return false, nil
		}
	}
	return true, nil
}
