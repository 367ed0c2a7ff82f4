package synod

import (
	"context"
	"maps"
	"slices"
	"sync"
)

// Storage holds acceptor state durably, one AcceptorState per key.
//
// Load of a key never stored returns the zero AcceptorState and a nil error.
// Store must not return until st is durable (synced to stable storage): the
// acceptor replies right after it, and a reply is a promise that survives crashes.
// Implementations must be safe for concurrent use; the Acceptor never calls Store
// concurrently for the same key, but does for different keys, which lets a store
// commit concurrent writes together (group commit).
type Storage interface {
	Load(ctx context.Context, key string) (AcceptorState, error)
	Store(ctx context.Context, key string, st AcceptorState) error
}

// KeyLister is an optional Storage ability: listing stored keys, for tools
// that inspect registers and for membership-change rescans.
type KeyLister interface {
	// Keys calls fn for every stored key in order until fn returns false.
	Keys(ctx context.Context, fn func(key string) bool) error
}

// ConfigStorage is an optional Storage ability: keeping the acceptor's
// configuration (see Config.Epoch) durably. An Acceptor needs it to take part
// in membership changes: it persists a configuration before it acknowledges it.
type ConfigStorage interface {
	// LoadConfig returns the stored configuration; ok is false if none is.
	LoadConfig(ctx context.Context) (cfg Config, ok bool, err error)
	// StoreConfig stores cfg durably (synced) before it returns.
	StoreConfig(ctx context.Context, cfg Config) error
}

// Deleter is an optional Storage ability: removing a key's state completely,
// for garbage collection of deleted registers. After Delete, Load of the key
// returns the zero state and KeyLister no longer lists it.
type Deleter interface {
	Delete(ctx context.Context, key string) error
}

// Compactor is an optional Storage ability: reclaiming now the disk space of
// the keys Deleter removed (pebblestore.Store has it). DiskUsage reports the
// bytes the storage takes on disk.
type Compactor interface {
	Compact(ctx context.Context) error
	DiskUsage() uint64
}

// KeyRangeLister is an optional KeyLister ability: listing the stored keys
// from a start key on, so that a tool pages through many keys without
// rescanning them from the first one.
type KeyRangeLister interface {
	// KeysFrom calls fn for every stored key not below start, in order, until
	// fn returns false.
	KeysFrom(ctx context.Context, start string, fn func(key string) bool) error
}

// MemoryStorage is a Storage in memory, for tests and simulations. "Durable"
// means it survives an Acceptor being discarded and rebuilt on the same
// MemoryStorage, which is how simulations model a crash and restart.
type MemoryStorage struct {
	mu     sync.Mutex
	m      map[string]AcceptorState
	cfg    Config
	hasCfg bool
}

var (
	_ Storage        = (*MemoryStorage)(nil)
	_ KeyLister      = (*MemoryStorage)(nil)
	_ KeyRangeLister = (*MemoryStorage)(nil)
	_ ConfigStorage  = (*MemoryStorage)(nil)
	_ Deleter        = (*MemoryStorage)(nil)
)

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{m: make(map[string]AcceptorState)}
}

// Load implements Storage. It returns a copy, so callers may not alias storage.
func (s *MemoryStorage) Load(_ context.Context, key string) (AcceptorState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[key]
	st.Value = slices.Clone(st.Value)
	return st, nil
}

// Store implements Storage.
func (s *MemoryStorage) Store(_ context.Context, key string, st AcceptorState) error {
	st.Value = slices.Clone(st.Value)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = st
	return nil
}

// Keys implements KeyLister.
func (s *MemoryStorage) Keys(ctx context.Context, fn func(string) bool) error {
	return s.KeysFrom(ctx, "", fn)
}

// KeysFrom implements KeyRangeLister.
func (s *MemoryStorage) KeysFrom(_ context.Context, start string, fn func(string) bool) error {
	s.mu.Lock()
	keys := slices.Sorted(maps.Keys(s.m))
	s.mu.Unlock()
	i, _ := slices.BinarySearch(keys, start)
	for _, k := range keys[i:] {
		if !fn(k) {
			break
		}
	}
	return nil
}

// Delete implements Deleter.
func (s *MemoryStorage) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// LoadConfig implements ConfigStorage.
func (s *MemoryStorage) LoadConfig(context.Context) (Config, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Clone(), s.hasCfg, nil
}

// StoreConfig implements ConfigStorage.
func (s *MemoryStorage) StoreConfig(_ context.Context, cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.hasCfg = cfg.Clone(), true
	return nil
}

// Len returns the number of stored keys.
func (s *MemoryStorage) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
