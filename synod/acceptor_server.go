package synod

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Acceptor serves prepare, accept and read requests for one acceptor ID over a
// Storage, one at a time or in batches (ApplyBatch): it loads the key's state,
// applies the rule, stores the new state durably, and only then returns the
// reply. It is safe for concurrent use; calls for one key are serialized, calls
// for different keys run concurrently so the Storage can commit them together.
type Acceptor struct {
	id    string
	store Storage
	cache *stateCache // nil when disabled; see WithStateCache

	mu    sync.Mutex
	locks map[string]*keyLock
	spare []*keyLock // unused locks, for reuse: a lock per request costs an allocation

	// epochMu is held shared by every request from its epoch check until its
	// reply is ready, and exclusively by Install: a request checked against
	// the old configuration never completes after a new one is acknowledged.
	epochMu sync.RWMutex
	cfg     Config      // the configuration served; zero until installed
	loaded  atomic.Bool // cfg was loaded from the store
	loadMu  sync.Mutex  // serializes the load of cfg
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// NewAcceptor returns an Acceptor with ID id over store. It starts with an
// empty state cache (see WithStateCache): a restarted acceptor reads every
// register from store again.
func NewAcceptor(id string, store Storage, opts ...AcceptorOption) *Acceptor {
	o := defaultAcceptorOptions()
	for _, opt := range opts {
		opt(&o)
	}
	a := &Acceptor{id: id, store: store, locks: make(map[string]*keyLock), cache: newStateCache(o.cacheBytes)}
	a.cache.observe(o.meterProvider, id)
	return a
}

// ID returns the acceptor's ID.
func (a *Acceptor) ID() string { return a.id }

// Prepare handles a PrepareRequest (a batch of one, see ApplyBatch). A
// request from an older epoch than the acceptor's configuration is refused
// with a *StaleEpochError, and one whose ballot counter is at or below the
// configuration's floor with a refusal.
func (a *Acceptor) Prepare(ctx context.Context, req PrepareRequest) (PrepareReply, error) {
	rep := a.ApplyBatch(ctx, []BatchRequest{{Op: OpPrepare, Prepare: req}})[0]
	if rep.Err != nil {
		return PrepareReply{}, rep.Err // no reply for what is not durable
	}
	return rep.Prepare, nil
}

// Accept handles an AcceptRequest (a batch of one, see ApplyBatch), with the
// epoch and floor checks of Prepare.
func (a *Acceptor) Accept(ctx context.Context, req AcceptRequest) (AcceptReply, error) {
	rep := a.ApplyBatch(ctx, []BatchRequest{{Op: OpAccept, Accept: req}})[0]
	if rep.Err != nil {
		return AcceptReply{}, rep.Err // no reply for what is not durable
	}
	return rep.Accept, nil
}

// Read handles a ReadRequest, with the epoch check of Prepare. It changes
// nothing and writes nothing.
func (a *Acceptor) Read(ctx context.Context, req ReadRequest) (ReadReply, error) {
	rep := a.ApplyBatch(ctx, []BatchRequest{{Op: OpRead, Read: req}})[0]
	if rep.Err != nil {
		return ReadReply{}, rep.Err
	}
	return rep.Read, nil
}

// KeysFrom calls fn for every key the acceptor stores, in order, from the
// first key not below start, until fn returns false: for inspection tools.
// It reads keys only and changes nothing. It uses the Storage's
// KeyRangeLister ability when it has one and otherwise its KeyLister,
// skipping the keys below start. The Storage must be a KeyLister.
func (a *Acceptor) KeysFrom(ctx context.Context, start string, fn func(key string) bool) error {
	switch st := a.store.(type) {
	case KeyRangeLister:
		return st.KeysFrom(ctx, start, fn)
	case KeyLister:
		return st.Keys(ctx, func(k string) bool { return k < start || fn(k) })
	}
	return errorf(ErrInvalidConfig, "acceptor %s: its storage cannot list keys", a.id)
}

// State returns the stored state of key, for inspection tools and tests.
func (a *Acceptor) State(ctx context.Context, key string) (AcceptorState, error) {
	unlock := a.lock(key)
	defer unlock()
	st, err := a.loadState(ctx, key)
	if err != nil {
		return AcceptorState{}, err
	}
	st.Value = slices.Clone(st.Value) // not the cache's copy
	return st, nil
}

// loadState returns key's state from the cache, or else from the Storage,
// caching what it read. The caller holds key's lock. A failed Load drops key
// from the cache. The Value may be the cache's: the caller must not modify it.
func (a *Acceptor) loadState(ctx context.Context, key string) (AcceptorState, error) {
	if st, ok := a.cache.get(key); ok {
		return st, nil
	}
	st, err := a.store.Load(ctx, key)
	if err != nil {
		a.cache.drop(key)
		return AcceptorState{}, fmt.Errorf("synod: acceptor %s: load %q: %w", a.id, key, err)
	}
	a.cache.put(key, st)
	return st, nil
}

// lock serializes work on one key and returns the function that unlocks it.
func (a *Acceptor) lock(key string) (unlock func()) {
	l := a.lockKey(key)
	return func() { a.unlockKey(key, l) }
}

// maxSpareLocks bounds the unused key locks an Acceptor keeps for reuse.
const maxSpareLocks = 1024

// lockKey locks key and returns its lock, for unlockKey. The per-key locks
// are reference counted so the map holds only keys in use.
func (a *Acceptor) lockKey(key string) *keyLock {
	a.mu.Lock()
	l := a.locks[key]
	if l == nil {
		if n := len(a.spare); n > 0 {
			l, a.spare = a.spare[n-1], a.spare[:n-1]
		} else {
			l = &keyLock{}
		}
		a.locks[key] = l
	}
	l.refs++
	a.mu.Unlock()
	l.mu.Lock()
	return l
}

// unlockKey unlocks key, whose lock lockKey returned.
func (a *Acceptor) unlockKey(key string, l *keyLock) {
	l.mu.Unlock()
	a.mu.Lock()
	if l.refs--; l.refs == 0 {
		// Nobody else holds l: it may serve another key.
		delete(a.locks, key)
		if len(a.spare) < maxSpareLocks {
			a.spare = append(a.spare, l)
		}
	}
	a.mu.Unlock()
}

// floorBallot is the Seen ballot of a refusal for a ballot at or below the
// floor: a proposer fast-forwards past it.
func (a *Acceptor) floorBallot(floor uint64) Ballot {
	return Ballot{Counter: floor, Proposer: a.id}
}

// load reads the stored configuration once. It needs no hold on epochMu:
// until loaded is set no request reads cfg, and afterwards load leaves it
// alone.
func (a *Acceptor) load(ctx context.Context) error {
	if a.loaded.Load() {
		return nil
	}
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	if a.loaded.Load() {
		return nil
	}
	if cs, ok := a.store.(ConfigStorage); ok {
		cfg, found, err := cs.LoadConfig(ctx)
		if err != nil {
			return fmt.Errorf("synod: acceptor %s: load configuration: %w", a.id, err)
		}
		if found {
			a.cfg = cfg
		}
	}
	a.loaded.Store(true)
	return nil
}

// rlock takes epochMu shared, with the configuration loaded. It loads
// without taking epochMu exclusively: a request that found it unloaded and
// then waited for the exclusive lock behind one that loaded it meanwhile and
// now holds it shared (through a slow Store, say) would hold every later
// request back, as a waiting writer blocks new readers.
func (a *Acceptor) rlock(ctx context.Context) error {
	if err := a.load(ctx); err != nil {
		return err
	}
	a.epochMu.RLock()
	return nil
}

// Config returns the configuration the acceptor serves: the zero Config (epoch
// 0, no acceptors) if none was ever installed.
func (a *Acceptor) Config(ctx context.Context) (Config, error) {
	a.epochMu.Lock()
	defer a.epochMu.Unlock()
	if err := a.load(ctx); err != nil {
		return Config{}, err
	}
	return a.cfg.Clone(), nil
}

// Install makes the acceptor serve cfg from now on, refusing requests of older
// epochs, and returns the configuration it serves. The configuration is
// durable before Install returns, and no request checked against the previous
// one is still in progress. Installing the configuration already served is a
// no-op; one older than it is refused with a *StaleEpochError, and a different
// one under the same epoch with ErrInvalidConfig. The Storage must be a
// ConfigStorage.
func (a *Acceptor) Install(ctx context.Context, cfg Config) (Config, error) {
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	if cfg.Epoch == 0 {
		return Config{}, errorf(ErrInvalidConfig, "install: epoch 0 is the initial configuration")
	}
	cs, ok := a.store.(ConfigStorage)
	if !ok {
		return Config{}, errorf(ErrInvalidConfig, "acceptor %s: its storage cannot keep a configuration", a.id)
	}
	a.epochMu.Lock()
	defer a.epochMu.Unlock()
	if err := a.load(ctx); err != nil {
		return Config{}, err
	}
	switch cur := a.cfg; {
	case cfg.Epoch < cur.Epoch:
		return cur.Clone(), &StaleEpochError{Acceptor: a.id, Epoch: cfg.Epoch, Config: cur.Clone()}
	case cfg.Epoch == cur.Epoch:
		if !sameConfig(cfg, cur) {
			return cur.Clone(), errorf(ErrInvalidConfig, "acceptor %s: epoch %d already holds %v, not %v", a.id, cur.Epoch, cur, cfg)
		}
		return cur.Clone(), nil
	}
	cfg = cfg.Clone()
	if err := cs.StoreConfig(ctx, cfg); err != nil {
		return Config{}, fmt.Errorf("synod: acceptor %s: store configuration: %w", a.id, err)
	}
	a.cfg = cfg
	return cfg.Clone(), nil
}

// sameConfig reports whether a and b are the same configuration.
func sameConfig(a, b Config) bool {
	return a.Epoch == b.Epoch && a.Floor == b.Floor && a.PrepareQuorum == b.PrepareQuorum &&
		a.AcceptQuorum == b.AcceptQuorum && slices.Equal(a.Acceptors, b.Acceptors)
}

// Keys returns up to limit stored keys greater than after, in order, for
// rescans and garbage collection. The Storage must be a KeyLister.
func (a *Acceptor) Keys(ctx context.Context, after string, limit int) ([]string, error) {
	var keys []string
	// The least key greater than after is after+"\x00".
	err := a.KeysFrom(ctx, after+"\x00", func(k string) bool {
		if k > after {
			keys = append(keys, k)
		}
		return len(keys) < limit
	})
	return keys, err
}

// Forget removes key from the acceptor's storage if its state is inert below
// floor: no value, and promised and accepted ballot counters at or below
// floor. It reports whether it removed the key. The acceptor must already
// serve a configuration whose floor is at least floor, so that no request
// with such a ballot is served any more; garbage collection calls it only
// once every living acceptor reported no value for key below floor (see the
// package doc, "Deletion"). The Storage must be a Deleter.
func (a *Acceptor) Forget(ctx context.Context, key string, floor uint64) (bool, error) {
	d, ok := a.store.(Deleter)
	if !ok {
		return false, errorf(ErrInvalidConfig, "acceptor %s: its storage cannot delete keys", a.id)
	}
	if err := a.rlock(ctx); err != nil {
		return false, err
	}
	defer a.epochMu.RUnlock()
	if a.cfg.Floor < floor {
		return false, errorf(ErrInvalidRequest, "acceptor %s: forget %q below %d: its floor is %d", a.id, key, floor, a.cfg.Floor)
	}
	unlock := a.lock(key)
	defer unlock()
	st, err := a.loadState(ctx, key)
	if err != nil {
		return false, err
	}
	if len(st.Value) != 0 || st.Promised.Counter > floor || st.Accepted.Counter > floor {
		return false, nil
	}
	// Whatever Delete does, the cached state is no longer the stored one.
	a.cache.drop(key)
	if err := d.Delete(ctx, key); err != nil {
		return false, fmt.Errorf("synod: acceptor %s: delete %q: %w", a.id, key, err)
	}
	return true, nil
}

// Compact reclaims the disk space of forgotten keys, after a garbage
// collection, and returns the storage's bytes on disk before and after. The
// Storage must be a Compactor.
func (a *Acceptor) Compact(ctx context.Context) (before, after uint64, err error) {
	c, ok := a.store.(Compactor)
	if !ok {
		return 0, 0, errorf(ErrInvalidConfig, "acceptor %s: its storage cannot compact", a.id)
	}
	before = c.DiskUsage()
	if err := c.Compact(ctx); err != nil {
		return before, 0, fmt.Errorf("synod: acceptor %s: compact: %w", a.id, err)
	}
	return before, c.DiskUsage(), nil
}
