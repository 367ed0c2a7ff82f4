package synod

import (
	"context"
	"fmt"
	"sync"
)

// Acceptor serves prepare and accept requests for one acceptor ID over a
// Storage: it loads the key's state, applies the rule, stores the new state
// durably, and only then returns the reply. It is safe for concurrent use; calls
// for one key are serialized, calls for different keys run concurrently so the
// Storage can commit them together.
type Acceptor struct {
	id    string
	store Storage

	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// NewAcceptor returns an Acceptor with ID id over store.
func NewAcceptor(id string, store Storage) *Acceptor {
	return &Acceptor{id: id, store: store, locks: make(map[string]*keyLock)}
}

// ID returns the acceptor's ID.
func (a *Acceptor) ID() string { return a.id }

// Prepare handles a PrepareRequest.
func (a *Acceptor) Prepare(ctx context.Context, req PrepareRequest) (PrepareReply, error) {
	if err := req.Validate(); err != nil {
		return PrepareReply{}, err
	}
	var rep PrepareReply
	err := a.update(ctx, req.Key, func(st AcceptorState) (AcceptorState, bool) {
		var changed bool
		st, rep, changed = st.Prepare(a.id, req)
		return st, changed
	})
	if err != nil {
		return PrepareReply{}, err // no reply for what is not durable
	}
	return rep, nil
}

// Accept handles an AcceptRequest.
func (a *Acceptor) Accept(ctx context.Context, req AcceptRequest) (AcceptReply, error) {
	if err := req.Validate(); err != nil {
		return AcceptReply{}, err
	}
	var rep AcceptReply
	err := a.update(ctx, req.Key, func(st AcceptorState) (AcceptorState, bool) {
		var changed bool
		st, rep, changed = st.Accept(a.id, req)
		return st, changed
	})
	if err != nil {
		return AcceptReply{}, err // no reply for what is not durable
	}
	return rep, nil
}

// Read handles a ReadRequest. It changes nothing and writes nothing.
func (a *Acceptor) Read(ctx context.Context, req ReadRequest) (ReadReply, error) {
	if err := req.Validate(); err != nil {
		return ReadReply{}, err
	}
	st, err := a.State(ctx, req.Key)
	if err != nil {
		return ReadReply{}, err
	}
	return st.Read(a.id, req), nil
}

// State returns the stored state of key, for inspection tools and tests.
func (a *Acceptor) State(ctx context.Context, key string) (AcceptorState, error) {
	unlock := a.lock(key)
	defer unlock()
	st, err := a.store.Load(ctx, key)
	if err != nil {
		return AcceptorState{}, fmt.Errorf("synod: acceptor %s: load %q: %w", a.id, key, err)
	}
	return st, nil
}

// update runs rule on key's state under the key's lock and persists the result
// before returning, if it changed.
func (a *Acceptor) update(ctx context.Context, key string, rule func(AcceptorState) (AcceptorState, bool)) error {
	unlock := a.lock(key)
	defer unlock()
	st, err := a.store.Load(ctx, key)
	if err != nil {
		return fmt.Errorf("synod: acceptor %s: load %q: %w", a.id, key, err)
	}
	st, changed := rule(st)
	if !changed {
		return nil
	}
	if err := a.store.Store(ctx, key, st); err != nil {
		return fmt.Errorf("synod: acceptor %s: store %q: %w", a.id, key, err)
	}
	return nil
}

// lock serializes work on one key; the per-key locks are reference counted so
// the map holds only keys in use.
func (a *Acceptor) lock(key string) (unlock func()) {
	a.mu.Lock()
	l := a.locks[key]
	if l == nil {
		l = &keyLock{}
		a.locks[key] = l
	}
	l.refs++
	a.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		a.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(a.locks, key)
		}
		a.mu.Unlock()
	}
}
