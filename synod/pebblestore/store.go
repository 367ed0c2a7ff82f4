package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/protosynod/protosynod/synod"
)

// Key layout: register keys live under dataPrefix, metadata under metaPrefix.
const (
	dataPrefix = 'd'
	metaPrefix = 'm'
)

// identityKey holds the identity record (see WithIdentity).
var identityKey = []byte{metaPrefix, '/', 'i', 'd', 'e', 'n', 't', 'i', 't', 'y'}

// Store is a durable synod.Storage on Pebble. It is safe for concurrent use.
// Open one with Open and release it with Close.
type Store struct {
	db     *pebble.DB
	dir    string
	logger *slog.Logger
	id     identity // recorded identity; zero if none
	m      *storeMetrics

	mu       sync.Mutex // guards closed and failed; held only to admit calls
	closed   bool
	failed   error
	inflight sync.WaitGroup // calls admitted and not yet returned
}

var (
	_ synod.Storage   = (*Store)(nil)
	_ synod.KeyLister = (*Store)(nil)
	_ io.Closer       = (*Store)(nil)
)

// KeyState is one register's key and state, for StoreBatch.
type KeyState struct {
	Key   string
	State synod.AcceptorState
}

// Open opens (creating if needed) the store in directory dir.
func Open(dir string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if (o.identity != identity{}) && (o.identity.Cluster == "" || o.identity.Acceptor == "") {
		return nil, fmt.Errorf("%w: pebblestore: identity needs both a cluster and an acceptor ID, got cluster %q acceptor %q",
			synod.ErrInvalidConfig, o.identity.Cluster, o.identity.Acceptor)
	}
	m, err := newStoreMetrics(o.meterProvider)
	if err != nil {
		return nil, err
	}
	po := &pebble.Options{FS: o.fs, Logger: pebbleLogger{o.logger}}
	for _, f := range o.pebble {
		f(po)
	}
	po.DisableWAL, po.ReadOnly = false, false

	var db *pebble.DB
	err = recoverFatal(func() (err error) {
		db, err = pebble.Open(dir, po)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{db: db, dir: dir, logger: o.logger, m: m}
	if err := s.bindIdentity(o.identity); err != nil {
		_ = recoverFatal(db.Close)
		return nil, err
	}
	s.logger.Info("pebblestore: opened", "dir", dir, "cluster", s.id.Cluster, "acceptor", s.id.Acceptor)
	return s, nil
}

// bindIdentity loads the recorded identity, records want if none is, and
// fails if another one is recorded.
func (s *Store) bindIdentity(want identity) error {
	have, found, err := s.loadIdentity()
	if err != nil {
		return err
	}
	switch {
	case found && want != (identity{}) && have != want:
		return fmt.Errorf("%w: %s was created for cluster %q acceptor %q; refusing to open it as cluster %q acceptor %q",
			ErrIdentityMismatch, s.dir, have.Cluster, have.Acceptor, want.Cluster, want.Acceptor)
	case found:
		s.id = have
	case want != (identity{}):
		err := recoverFatal(func() error {
			return s.db.Set(identityKey, appendIdentity(nil, string(identityKey), want), pebble.Sync)
		})
		if err != nil {
			return fmt.Errorf("pebblestore: record identity in %s: %w", s.dir, err)
		}
		s.id = want
	}
	return nil
}

func (s *Store) loadIdentity() (identity, bool, error) {
	v, closer, err := s.db.Get(identityKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return identity{}, false, nil
	}
	if err != nil {
		return identity{}, false, fmt.Errorf("pebblestore: read identity of %s: %w", s.dir, err)
	}
	defer closer.Close()
	id, err := decodeIdentity(string(identityKey), v)
	if err != nil {
		return identity{}, false, fmt.Errorf("pebblestore: identity of %s: %w", s.dir, err)
	}
	return id, true, nil
}

// Identity returns the cluster and acceptor ID recorded in the data
// directory; ok is false if none is.
func (s *Store) Identity() (cluster, acceptorID string, ok bool) {
	return s.id.Cluster, s.id.Acceptor, s.id != identity{}
}

// Load implements synod.Storage. A missing key is the zero state; a record
// that fails its checksum or does not decode is an error wrapping ErrCorrupt. A
// canceled ctx is checked before reading.
func (s *Store) Load(ctx context.Context, key string) (synod.AcceptorState, error) {
	if err := s.enter("load", key); err != nil {
		return synod.AcceptorState{}, err
	}
	defer s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return synod.AcceptorState{}, fmt.Errorf("pebblestore: load %q: %w", key, err)
	}
	v, closer, err := s.db.Get(dataKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return synod.AcceptorState{}, nil
	}
	if err != nil {
		if pebble.IsCorruptionError(err) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return synod.AcceptorState{}, fmt.Errorf("pebblestore: load %q: %w", key, err)
	}
	defer closer.Close()
	st, err := decodeState(key, v)
	if err != nil {
		s.logger.Error("pebblestore: corrupt record", "key", key, "err", err)
		return synod.AcceptorState{}, fmt.Errorf("pebblestore: load %q: %w", key, err)
	}
	return st, nil
}

// Store implements synod.Storage: it returns after st is synced to the WAL.
// Concurrent Stores share WAL fsyncs. A canceled ctx is checked before the
// commit starts; once started, the commit completes and Store returns its
// outcome, so an error never hides a write that did become durable, except for
// ErrFailed, whose outcome is unknown.
func (s *Store) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	rec, err := appendState(nil, key, st)
	if err != nil {
		return fmt.Errorf("pebblestore: store %q: %w", key, err)
	}
	if err := s.enter("store", key); err != nil {
		return err
	}
	defer s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: store %q: %w", key, err)
	}
	if err := s.commit(1, func() error { return s.db.Set(dataKey(key), rec, pebble.Sync) }); err != nil {
		return fmt.Errorf("pebblestore: store %q: %w", key, err)
	}
	return nil
}

// StoreBatch stores several registers in one synced batch: all of them become
// durable together, or (on error) none is acknowledged. A key listed twice takes
// its last state. The ctx rules are those of Store.
func (s *Store) StoreBatch(ctx context.Context, entries []KeyState) error {
	if len(entries) == 0 {
		return nil
	}
	if err := s.enter("store batch", entries[0].Key); err != nil {
		return err
	}
	defer s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: store batch of %d: %w", len(entries), err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	var rec []byte
	for _, e := range entries {
		var err error
		if rec, err = appendState(rec[:0], e.Key, e.State); err != nil {
			return fmt.Errorf("pebblestore: store batch %q: %w", e.Key, err)
		}
		if err := b.Set(dataKey(e.Key), rec, nil); err != nil { // Set copies rec.
			return fmt.Errorf("pebblestore: store batch %q: %w", e.Key, err)
		}
	}
	if err := s.commit(len(entries), func() error { return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("pebblestore: store batch of %d: %w", len(entries), err)
	}
	return nil
}

// Keys implements synod.KeyLister: it calls fn for every stored register key in
// ascending byte order until fn returns false or ctx is done. It reads keys
// only; records are checked when loaded.
func (s *Store) Keys(ctx context.Context, fn func(key string) bool) (err error) {
	if err := s.enter("keys", ""); err != nil {
		return err
	}
	defer s.inflight.Done()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: []byte{dataPrefix},
		UpperBound: []byte{dataPrefix + 1},
	})
	if err != nil {
		return fmt.Errorf("pebblestore: keys: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("pebblestore: keys: %w", cerr)
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pebblestore: keys: %w", err)
		}
		if !fn(string(it.Key()[1:])) {
			return nil
		}
	}
	return nil
}

// Close waits for calls in progress, then closes the database. Calls after
// Close return an error wrapping synod.ErrClosed; closing again returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	if err := recoverFatal(s.db.Close); err != nil {
		return fmt.Errorf("pebblestore: close %s: %w", s.dir, err)
	}
	s.logger.Info("pebblestore: closed", "dir", s.dir)
	return nil
}

// enter admits a call: it fails if the store is closed or failed, and
// otherwise counts the call in flight until the caller's inflight.Done. The
// mutex is held for the check only, never across I/O.
func (s *Store) enter(op, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("pebblestore: %s %q: %w", op, key, synod.ErrClosed)
	case s.failed != nil:
		return fmt.Errorf("pebblestore: %s %q: %w", op, key, s.failed)
	}
	s.inflight.Add(1)
	return nil
}

// commit runs a synced Pebble commit of n registers. Pebble reports a failed commit (such as a
// failed WAL fsync) through Logger.Fatalf, after the batch may already be
// visible to reads; the store then fails for good, so that nothing it did not
// make durable is ever served.
func (s *Store) commit(n int, apply func() error) error {
	start := time.Now()
	err := recoverFatal(apply)
	if err == nil {
		s.m.committed(start, n)
	}
	if err == nil || !errors.Is(err, ErrFailed) {
		return err
	}
	s.mu.Lock()
	if s.failed == nil {
		s.failed = err
	}
	s.mu.Unlock()
	s.logger.Error("pebblestore: commit failed; refusing further work until reopened", "dir", s.dir, "err", err)
	return err
}

// dataKey returns the Pebble key of register key.
func dataKey(key string) []byte {
	k := make([]byte, 0, 1+len(key))
	return append(append(k, dataPrefix), key...)
}

// fatalError is what pebbleLogger.Fatalf panics with, so that recoverFatal can
// turn a fatal error in the calling goroutine into ErrFailed.
type fatalError struct{ msg string }

// recoverFatal runs f and turns a Pebble Fatalf in this goroutine into an error
// wrapping ErrFailed. Other panics propagate.
func recoverFatal(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%w: %s", ErrFailed, fe.msg)
		}
	}()
	return f()
}

// pebbleLogger adapts slog to pebble.Logger.
type pebbleLogger struct{ l *slog.Logger }

// Infof implements pebble.Logger at slog's Debug level.
func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

// Errorf implements pebble.Logger.
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf implements pebble.Logger: it logs and panics with a fatalError, which
// recoverFatal catches when the fatal error happens in a Store call. Pebble
// expects Fatalf not to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic(fatalError{msg: msg})
}
