package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// openTemp opens a store in a fresh temporary directory and closes it when
// the test ends.
func openTemp(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	synodtest.TestStorage(t, func(t *testing.T) synod.Storage { return openTemp(t) })
}

func TestConformanceMemFS(t *testing.T) {
	synodtest.TestStorage(t, func(t *testing.T) synod.Storage {
		s, err := Open("db", WithFS(vfs.NewMem()), WithIdentity("c", "a0"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func ballot(c uint64, p string) synod.Ballot { return synod.Ballot{Counter: c, Proposer: p} }

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	want := map[string]synod.AcceptorState{
		"a": {Promised: ballot(2, "p"), Accepted: ballot(1, "p"), Value: []byte("one")},
		"b": {Promised: ballot(3, "q"), Value: []byte{}},
		"c": {Promised: ballot(4, "r")},
	}
	s, err := Open(dir, WithIdentity("c1", "a1"))
	if err != nil {
		t.Fatal(err)
	}
	for k, st := range want {
		if err := s.Store(t.Context(), k, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, WithIdentity("c1", "a1"))
	for k, st := range want {
		got, err := s.Load(t.Context(), k)
		if err != nil {
			t.Fatalf("Load(%q): %v", k, err)
		}
		if !sameState(got, st) {
			t.Errorf("Load(%q) after reopen = %+v, want %+v", k, got, st)
		}
	}
}

func openAt(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func sameState(a, b synod.AcceptorState) bool {
	return a.Promised == b.Promised && a.Accepted == b.Accepted &&
		bytes.Equal(a.Value, b.Value) && (a.Value == nil) == (b.Value == nil)
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, WithIdentity("prod", "a1"))
	if err != nil {
		t.Fatal(err)
	}
	if c, a, ok := s.Identity(); c != "prod" || a != "a1" || !ok {
		t.Errorf("Identity() = %q, %q, %v; want prod, a1, true", c, a, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		opts     []Option
		wantErr  error
		wantText []string
	}{
		{"same identity", []Option{WithIdentity("prod", "a1")}, nil, nil},
		{"no identity given", nil, nil, nil},
		{"other acceptor", []Option{WithIdentity("prod", "a2")}, ErrIdentityMismatch,
			[]string{`cluster "prod" acceptor "a1"`, `cluster "prod" acceptor "a2"`, dir}},
		{"other cluster", []Option{WithIdentity("staging", "a1")}, ErrIdentityMismatch,
			[]string{`cluster "prod" acceptor "a1"`, `cluster "staging" acceptor "a1"`}},
		{"empty acceptor", []Option{WithIdentity("prod", "")}, synod.ErrInvalidConfig, nil},
		{"empty cluster", []Option{WithIdentity("", "a1")}, synod.ErrInvalidConfig, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(dir, tt.opts...)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				if c, a, ok := s.Identity(); c != "prod" || a != "a1" || !ok {
					t.Errorf("Identity() = %q, %q, %v; want the recorded prod, a1, true", c, a, ok)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want %v", tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Open error %v, want one matching %v", err, tt.wantErr)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			t.Logf("Open error: %v", err)
		})
	}
	// The refused opens released the directory: it opens again.
	openAt(t, dir, WithIdentity("prod", "a1"))
}

func TestIdentityRecordedOnFirstOpenOnly(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir) // no identity: nothing recorded
	if _, _, ok := s.Identity(); ok {
		t.Fatalf("Identity recorded without WithIdentity")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, WithIdentity("c", "x"))
	s.Close()
	if _, err := Open(dir, WithIdentity("c", "y")); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("Open under another identity after adoption: %v, want ErrIdentityMismatch", err)
	}
}

func TestIdentityCorrupt(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, WithIdentity("c", "a"))
	rec := appendIdentity(nil, string(identityKey), identity{"c", "a"})
	rec[3] ^= 0x40
	if err := s.db.Set(identityKey, rec, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, WithIdentity("c", "a")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a corrupt identity record: %v, want ErrCorrupt", err)
	}
}

func TestMetaKeyCannotCollide(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, WithIdentity("c", "a"))
	// User keys that spell the meta key land in the data keyspace.
	for _, k := range []string{string(identityKey), "/identity", "m"} {
		st := synod.AcceptorState{Promised: ballot(1, "p"), Value: []byte(k)}
		if err := s.Store(t.Context(), k, st); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openAt(t, dir, WithIdentity("c", "a"))
	var keys []string
	if err := s.Keys(t.Context(), func(k string) bool { keys = append(keys, k); return true }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/identity", "m", "m/identity"}; fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("Keys = %q, want %q (no meta key)", keys, want)
	}
}

func TestCorruptRecordIsNeverServed(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	const key = "k"
	st := synod.AcceptorState{Promised: ballot(7, "node/1"), Accepted: ballot(6, "node/1"), Value: []byte("value")}
	good, err := appendState(nil, key, st)
	if err != nil {
		t.Fatal(err)
	}
	writeRaw := func(t *testing.T, rec []byte) {
		t.Helper()
		if err := s.db.Set(dataKey(key), rec, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	checkCorrupt := func(t *testing.T, what string) {
		t.Helper()
		got, err := s.Load(ctx, key)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Load = %+v, %v; want an error matching ErrCorrupt", what, got, err)
		}
		if !sameState(got, synod.AcceptorState{}) {
			t.Fatalf("%s: Load served %+v with its error", what, got)
		}
	}
	// Every single-bit flip anywhere in the record.
	for i := range good {
		for bit := range 8 {
			bad := bytes.Clone(good)
			bad[i] ^= 1 << bit
			writeRaw(t, bad)
			checkCorrupt(t, fmt.Sprintf("bit %d of byte %d flipped", bit, i))
		}
	}
	// Every truncation and an extension.
	for n := range len(good) {
		writeRaw(t, good[:n])
		checkCorrupt(t, fmt.Sprintf("truncated to %d bytes", n))
	}
	writeRaw(t, append(bytes.Clone(good), 0))
	checkCorrupt(t, "one byte appended")
	// A valid record of another key.
	other, _ := appendState(nil, "other", st)
	writeRaw(t, other)
	checkCorrupt(t, "record of another key")
	// The good record still loads: the checks above are not trivially failing.
	writeRaw(t, good)
	if got, err := s.Load(ctx, key); err != nil || !sameState(got, st) {
		t.Fatalf("Load of the intact record = %+v, %v; want %+v", got, err, st)
	}
}

// TestAcceptorRefusesOnCorruptRecord shows the Acceptor replies nothing,
// neither promise nor rejection, for a key whose record is corrupt. The
// record is corrupted behind the acceptor's back, so it is read by a
// restarted acceptor (the first one has the key's state in its cache).
func TestAcceptorRefusesOnCorruptRecord(t *testing.T) {
	s := openTemp(t)
	acc := synod.NewAcceptor("a0", s)
	if _, err := acc.Prepare(t.Context(), synod.PrepareRequest{Key: "k", Ballot: ballot(5, "p")}); err != nil {
		t.Fatal(err)
	}
	v, closer, err := s.db.Get(dataKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(v)
	closer.Close()
	bad[len(bad)/2] ^= 0xff
	if err := s.db.Set(dataKey("k"), bad, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	acc = synod.NewAcceptor("a0", s)
	rep, err := acc.Prepare(t.Context(), synod.PrepareRequest{Key: "k", Ballot: ballot(9, "p")})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Prepare over a corrupt record = %+v, %v; want an error matching ErrCorrupt", rep, err)
	}
}

func TestClose(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Store(ctx, "k", synod.AcceptorState{Promised: ballot(1, "p")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	calls := map[string]error{
		"Load":       func() error { _, err := s.Load(ctx, "k"); return err }(),
		"Store":      s.Store(ctx, "k", synod.AcceptorState{Promised: ballot(2, "p")}),
		"StoreBatch": s.StoreBatch(ctx, []KeyState{{Key: "k"}}),
		"Keys":       s.Keys(ctx, func(string) bool { return true }),
	}
	for name, err := range calls {
		if !errors.Is(err, synod.ErrClosed) {
			t.Errorf("%s after Close: %v, want an error matching synod.ErrClosed", name, err)
		}
	}
}

// TestCloseWaitsForCalls closes while Stores are running: each Store either
// completes (and its state is durable) or returns ErrClosed, and nothing panics.
func TestCloseWaitsForCalls(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const workers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stored  = map[string]uint64{}
		started = make(chan struct{}, workers)
	)
	for w := range workers {
		wg.Go(func() {
			key := fmt.Sprintf("w%d", w)
			for i := uint64(1); ; i++ {
				err := s.Store(context.Background(), key, synod.AcceptorState{Promised: ballot(i, "p")})
				if errors.Is(err, synod.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Store: %v", err)
					return
				}
				mu.Lock()
				stored[key] = i
				mu.Unlock()
				if i == 1 {
					started <- struct{}{}
				}
			}
		})
	}
	for range workers {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	s = openAt(t, dir)
	for key, n := range stored {
		got, err := s.Load(t.Context(), key)
		if err != nil || got.Promised.Counter != n {
			t.Errorf("Load(%q) = %v, %v; want promised counter %d", key, got.Promised, err, n)
		}
	}
}

func TestStoreBatch(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	entries := []KeyState{
		{Key: "a", State: synod.AcceptorState{Promised: ballot(1, "p"), Value: []byte("a1")}},
		{Key: "b", State: synod.AcceptorState{Promised: ballot(2, "p"), Value: []byte{}}},
		{Key: "a", State: synod.AcceptorState{Promised: ballot(3, "p"), Value: []byte("a2")}}, // last wins
	}
	if err := s.StoreBatch(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreBatch(ctx, nil); err != nil {
		t.Fatalf("empty StoreBatch: %v", err)
	}
	for _, want := range []KeyState{entries[1], entries[2]} {
		got, err := s.Load(ctx, want.Key)
		if err != nil || !sameState(got, want.State) {
			t.Errorf("Load(%q) = %+v, %v; want %+v", want.Key, got, err, want.State)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.StoreBatch(canceled, entries); !errors.Is(err, context.Canceled) {
		t.Errorf("StoreBatch with a canceled context: %v, want context.Canceled", err)
	}
}

func TestKeysCanceled(t *testing.T) {
	s := openTemp(t)
	for i := range 10 {
		if err := s.Store(t.Context(), fmt.Sprint(i), synod.AcceptorState{Promised: ballot(1, "p")}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := s.Keys(ctx, func(string) bool { n++; cancel(); return true })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("Keys canceled in fn: %v after %d keys; want context.Canceled after 1", err, n)
	}
}
