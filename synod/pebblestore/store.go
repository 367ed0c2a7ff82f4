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

	"github.com/protosynod/protosynod/internal/ratelog"
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
	space  *space
	health *health

	mu       sync.Mutex // guards closed; held only to admit calls
	closed   bool
	inflight sync.WaitGroup // calls admitted and not yet returned
}

// health records that the store failed for good. Pebble's event listener
// reports to it, so it exists before the Store.
type health struct {
	logger *slog.Logger
	rlog   *ratelog.Logger
	m      *storeMetrics

	mu     sync.Mutex
	failed error
	ch     chan struct{} // closed when failed is set
}

// fail records err as the store's failure, once.
func (h *health) fail(err error) {
	h.mu.Lock()
	first := h.failed == nil
	if first {
		h.failed = err
		close(h.ch)
	}
	h.mu.Unlock()
	if first {
		h.m.failed(errorKind(err))
		h.logger.Error("pebblestore: store failed; refusing all work until the process restarts and reopens it from disk", "err", err)
	}
}

func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}

// logInterval is how often the store (and Pebble through it) logs one line of
// a repeated cause.
const logInterval = time.Second

var (
	_ synod.Storage        = (*Store)(nil)
	_ synod.KeyLister      = (*Store)(nil)
	_ synod.KeyRangeLister = (*Store)(nil)
	_ synod.BatchStorage   = (*Store)(nil)
	_ io.Closer            = (*Store)(nil)
)

// KeyState is one register's key and state, for StoreBatch.
type KeyState = synod.KeyState

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
	if err := checkStart(o.fs, dir, o.reserve); err != nil {
		return nil, err
	}
	sp := &space{fs: o.fs, dir: dir, reserve: o.reserve}
	m, err := newStoreMetrics(o.meterProvider, sp)
	if err != nil {
		return nil, err
	}
	rlog := ratelog.New(o.logger, logInterval)
	h := &health{logger: o.logger, rlog: rlog, m: m, ch: make(chan struct{})}
	po := &pebble.Options{FS: o.fs, Logger: pebbleLogger{o.logger, rlog}}
	for _, f := range o.pebble {
		f(po)
	}
	po.DisableWAL, po.ReadOnly = false, false
	po.EnsureDefaults()
	// Pebble preallocates 110% of the memtable size for a WAL; prewrite as much.
	po.FS = &walFS{FS: po.FS, size: int64(po.MemTableSize + po.MemTableSize/10), space: sp, logger: o.logger}
	el := pebble.EventListener{BackgroundError: func(err error) {
		// Pebble retries a failed flush or compaction at once and for ever,
		// and blocks writes once its memtables are full: fail instead, so
		// that calls end now and the process restarts (see the package doc).
		h.fail(classify(&failure{msg: "background: " + err.Error(), cause: err}))
	}}
	if po.EventListener != nil {
		el = pebble.TeeEventListener(el, *po.EventListener)
	}
	po.EventListener = &el

	var db *pebble.DB
	err = recoverFatal(func() (err error) {
		db, err = pebble.Open(dir, po)
		return err
	})
	if err == nil {
		err = h.err()
	}
	if err != nil {
		m.close()
		return nil, classify(fmt.Errorf("pebblestore: open %s: %w", dir, err))
	}
	s := &Store{db: db, dir: dir, logger: o.logger, m: m, space: sp, health: h}
	if err := s.bindIdentity(o.identity); err != nil {
		if h.err() == nil {
			_ = recoverFatal(db.Close)
		}
		m.close()
		return nil, classify(err)
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
		err := s.commit(context.Background(), 0, func() error {
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
// commit starts. Below the space reserve (WithSpaceReserve) a key the store
// does not hold is refused with ErrNoSpace, and below half of it every key is,
// before anything is written. A commit that fails (or is stuck in Pebble when
// the store fails) returns an error matching ErrFailed, as does every later
// call; if ctx ends while the commit runs, Store returns ctx's error at once
// and the store fails too (the abandoned write could otherwise land after a
// later write of the same key). In both cases the write may or may not become
// durable; every other error means it did not.
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
	if err := s.checkSpace(key); err != nil {
		return fmt.Errorf("pebblestore: store %q: %w", key, err)
	}
	if err := s.commit(ctx, 1, func() error { return s.db.Set(dataKey(key), rec, pebble.Sync) }); err != nil {
		return fmt.Errorf("pebblestore: store %q: %w", key, err)
	}
	return nil
}

// checkSpace applies the space reserve to a write of key.
func (s *Store) checkSpace(key string) error {
	reason, err := s.space.checkWrite([]string{key}, s.exists)
	if reason != "" {
		s.m.refused(reason, 1)
		s.health.rlog.Log(slog.LevelWarn, "space "+reason, "pebblestore: write refused: low on disk space", "dir", s.dir, "err", err)
	}
	return err
}

// checkBatchSpace applies the space reserve to a batch of entries: err
// refuses them all, refused[i] (refused is nil when none is) entries[i] alone.
func (s *Store) checkBatchSpace(entries []KeyState) (refused []error, err error) {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	reason, refused, err := s.space.checkKeys(keys, s.exists)
	if reason == "" {
		return nil, err
	}
	n, first := len(entries), err
	if err == nil {
		n = 0
		for _, e := range refused {
			if e != nil {
				if n++; first == nil {
					first = e
				}
			}
		}
	}
	s.m.refused(reason, n)
	s.health.rlog.Log(slog.LevelWarn, "space "+reason, "pebblestore: write refused: low on disk space", "dir", s.dir, "keys", n, "err", first)
	return refused, err
}

// exists reports whether register key is stored.
func (s *Store) exists(key string) (found bool, err error) {
	err = recoverFatal(func() error {
		_, closer, err := s.db.Get(dataKey(key))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err == nil {
			found = true
			return closer.Close()
		}
		return err
	})
	return found, err
}

// StoreBatch implements synod.BatchStorage: it stores several registers in one
// synced batch (one WAL fsync); all of them become durable together, or (on
// error) none is acknowledged. A key listed twice takes its last state. Below
// the space reserve the keys the store does not hold are refused and the
// others still stored, in one batch: StoreBatch then returns a
// *synod.BatchError whose entries of refused keys match ErrNoSpace. The ctx
// rules and the other errors are those of Store.
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
	refused, err := s.checkBatchSpace(entries)
	if err != nil {
		return fmt.Errorf("pebblestore: store batch of %d: %w", len(entries), err)
	}
	b := s.db.NewBatch()
	var rec []byte
	n := 0
	for i, e := range entries {
		if refused != nil && refused[i] != nil {
			refused[i] = fmt.Errorf("pebblestore: store batch %q: %w", e.Key, refused[i])
			continue
		}
		var err error
		if rec, err = appendState(rec[:0], e.Key, e.State); err != nil {
			_ = b.Close()
			return fmt.Errorf("pebblestore: store batch %q: %w", e.Key, err)
		}
		if err := b.Set(dataKey(e.Key), rec, nil); err != nil { // Set copies rec.
			_ = b.Close()
			return fmt.Errorf("pebblestore: store batch %q: %w", e.Key, err)
		}
		n++
	}
	if n == 0 {
		_ = b.Close()
		return &synod.BatchError{Errs: refused}
	}
	// The batch is closed by the commit's goroutine, which may outlive this
	// call (see commit).
	if err := s.commit(ctx, n, func() error { defer b.Close(); return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("pebblestore: store batch of %d: %w", n, err)
	}
	if refused != nil {
		return &synod.BatchError{Errs: refused}
	}
	return nil
}

// Keys implements synod.KeyLister: it calls fn for every stored register key in
// ascending byte order until fn returns false or ctx is done. It reads keys
// only; records are checked when loaded.
func (s *Store) Keys(ctx context.Context, fn func(key string) bool) (err error) {
	return s.KeysFrom(ctx, "", fn)
}

// KeysFrom implements synod.KeyRangeLister: Keys from the first key not below
// start.
func (s *Store) KeysFrom(ctx context.Context, start string, fn func(key string) bool) (err error) {
	if err := s.enter("keys", start); err != nil {
		return err
	}
	defer s.inflight.Done()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: dataKey(start),
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

// Failed returns a channel that is closed when the store fails for good (see
// ErrFailed); Err then returns the failure.
func (s *Store) Failed() <-chan struct{} { return s.health.ch }

// Err returns the store's failure (an error matching ErrFailed, and
// ErrNoSpace if a full disk caused it), or nil while it works.
func (s *Store) Err() error { return s.health.err() }

// Close waits for calls in progress, then closes the database. Calls after
// Close return an error wrapping synod.ErrClosed; closing again returns nil.
// Close of a failed store does not close Pebble, whose commit pipeline may be
// stuck for good: it returns the failure, and the process must exit to
// release the data directory.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	defer s.health.rlog.Flush()
	if err := s.health.err(); err != nil {
		return fmt.Errorf("pebblestore: close %s: not closing a failed store: %w", s.dir, err)
	}
	defer s.m.close()
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
	case s.health.err() != nil:
		return fmt.Errorf("pebblestore: %s %q: %w", op, key, s.health.err())
	}
	s.inflight.Add(1)
	return nil
}

// commit runs a synced Pebble commit of n registers on its own goroutine and
// waits for it, for the store to fail, or for ctx to end. Pebble reports a
// failed commit (such as a failed WAL write or fsync) through Logger.Fatalf or
// a panic, after the batch may already be visible to reads, and its commit
// pipeline is stuck afterwards; the store then fails for good, so that nothing
// it did not make durable is ever served. A commit stuck behind the failure
// (in Pebble's write stall, say) is abandoned: its goroutine may run on.
func (s *Store) commit(ctx context.Context, n int, apply func() error) error {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- recoverFatal(apply) }()
	var err error
	select {
	case err = <-done:
	case <-s.health.ch:
		err = s.health.err()
	case <-ctx.Done():
		// The abandoned commit may still land, after writes of the same key
		// that start later: the store can no longer keep per-key order, so
		// it fails (in practice only when a shutdown's drain times out).
		s.health.fail(&failure{msg: "a commit was abandoned when its caller gave up: " + ctx.Err().Error(), cause: ctx.Err()})
		return fmt.Errorf("%w (the write may or may not become durable): %w", ctx.Err(), s.health.err())
	}
	if err == nil {
		if n > 0 {
			s.m.committed(start, n)
		}
		return nil
	}
	err = classify(err)
	if errors.Is(err, ErrFailed) {
		s.health.fail(err)
	} else {
		s.m.errored(errorKind(err))
	}
	return err
}

// dataKey returns the Pebble key of register key.
func dataKey(key string) []byte {
	k := make([]byte, 0, 1+len(key))
	return append(append(k, dataPrefix), key...)
}

// fatalError is what pebbleLogger.Fatalf panics with, so that recoverFatal can
// turn a fatal error in the calling goroutine into ErrFailed. err is the first
// error among Fatalf's arguments, if any.
type fatalError struct {
	msg string
	err error
}

// recoverFatal runs f and turns any panic in this goroutine (a Pebble Fatalf,
// or Pebble's own panic on a failed WAL write) into an error matching
// ErrFailed, and ErrNoSpace when a full disk caused it.
func recoverFatal(f func() error) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		switch v := r.(type) {
		case fatalError:
			err = &failure{msg: v.msg, cause: v.err}
		case error:
			err = &failure{msg: "pebble panicked: " + v.Error(), cause: v}
		default:
			err = &failure{msg: fmt.Sprintf("pebble panicked: %v", v)}
		}
		err = classify(err)
	}()
	return f()
}

// pebbleLogger adapts slog to pebble.Logger. Errors are rate-limited: one
// line per format string (Pebble's cause) per second, with a count.
type pebbleLogger struct {
	l    *slog.Logger
	rlog *ratelog.Logger
}

// Infof implements pebble.Logger at slog's Debug level.
func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

// Errorf implements pebble.Logger.
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.rlog.Log(slog.LevelError, "pebble "+format, fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf implements pebble.Logger: it logs and panics with a fatalError, which
// recoverFatal catches when the fatal error happens in a Store call. Pebble
// expects Fatalf not to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	fe := fatalError{msg: msg}
	for _, a := range args {
		if err, ok := a.(error); ok {
			fe.err = err
			break
		}
	}
	panic(fe)
}
