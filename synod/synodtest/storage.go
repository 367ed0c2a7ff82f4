package synodtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/protosynod/protosynod/synod"
)

// TestStorage is the conformance suite for synod.Storage implementations. Call it
// from a test of the implementation's package with a constructor that returns a
// fresh, empty store (and registers its cleanup with t.Cleanup):
//
//	func TestConformance(t *testing.T) {
//		synodtest.TestStorage(t, func(t *testing.T) synod.Storage { return open(t) })
//	}
//
// Besides the synod.Storage contract it pins down what callers rely on:
//   - Load of a missing key returns the zero AcceptorState (nil Value) and a nil error.
//   - Store then Load returns exactly what was stored, including the difference
//     between a nil Value (empty register) and a non-nil empty Value.
//   - Store replaces the whole state of the key.
//   - Store and Load copy values: the caller may change a slice after Store, or
//     one returned by Load, without changing what is stored.
//   - Concurrent Stores of different keys are safe and all take effect.
//   - A canceled context: Load and Store either complete normally or return an
//     error matching the context's error (errors.Is(err, context.Canceled)).
//     When Store returns an error the key holds either its old or its new state,
//     never anything else, and the caller must treat the outcome as unknown.
//   - If the store implements synod.KeyLister, Keys lists every stored key once,
//     in ascending byte order, and stops when fn returns false; if it
//     implements synod.KeyRangeLister, KeysFrom lists those not below start.
//
// Keys are non-empty byte strings of any content (the Acceptor rejects empty keys).
func TestStorage(t *testing.T, newStore func(t *testing.T) synod.Storage) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s synod.Storage)
	}{
		{"MissingKey", storageMissingKey},
		{"RoundTrip", storageRoundTrip},
		{"Overwrite", storageOverwrite},
		{"ManyKeys", storageManyKeys},
		{"ConcurrentKeys", storageConcurrentKeys},
		{"CopySemantics", storageCopySemantics},
		{"CanceledContext", storageCanceledContext},
		{"KeyLister", storageKeyLister},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t))
		})
	}
}

// sampleStates are states of every shape a Storage must round-trip exactly.
func sampleStates() map[string]synod.AcceptorState {
	b := func(c uint64, p string) synod.Ballot { return synod.Ballot{Counter: c, Proposer: p} }
	large := make([]byte, 1<<20)
	for i := range large {
		large[i] = byte(i * 7)
	}
	return map[string]synod.AcceptorState{
		"zero":                {},
		"promised only":       {Promised: b(1, "n1/0000000000000001")},
		"accepted nil value":  {Promised: b(3, "p"), Accepted: b(2, "p")},
		"accepted empty":      {Promised: b(3, "p"), Accepted: b(3, "p"), Value: []byte{}},
		"empty value only":    {Value: []byte{}},
		"one byte":            {Promised: b(5, "q"), Accepted: b(5, "q"), Value: []byte{0}},
		"binary value":        {Promised: b(9, "q"), Accepted: b(8, "r"), Value: []byte("\x00\xff\n\x00")},
		"max counter":         {Promised: b(^uint64(0), "z"), Accepted: b(^uint64(0)-1, "z"), Value: []byte("v")},
		"odd proposer bytes":  {Promised: b(2, "é/\x00/✓"), Accepted: b(1, "\xff"), Value: []byte("x")},
		"long proposer":       {Promised: b(2, string(bytes.Repeat([]byte("p"), 4096))), Value: []byte("x")},
		"large value (1 MiB)": {Promised: b(7, "p"), Accepted: b(7, "p"), Value: large},
	}
}

// sameState reports whether got equals want exactly, nil versus empty Value included.
func sameState(got, want synod.AcceptorState) bool {
	return got.Promised == want.Promised && got.Accepted == want.Accepted &&
		bytes.Equal(got.Value, want.Value) && (got.Value == nil) == (want.Value == nil)
}

// formatState prints st for failure messages, abbreviating long values.
func formatState(st synod.AcceptorState) string {
	v := "nil"
	switch {
	case st.Value == nil:
	case len(st.Value) > 32:
		v = fmt.Sprintf("%d bytes %q…", len(st.Value), st.Value[:32])
	default:
		v = fmt.Sprintf("%q", st.Value)
	}
	return fmt.Sprintf("{promised %v, accepted %v, value %s}", st.Promised, st.Accepted, v)
}

func mustLoad(t *testing.T, s synod.Storage, key string) synod.AcceptorState {
	t.Helper()
	st, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("Load(%q) error: %v", key, err)
	}
	return st
}

func mustStore(t *testing.T, s synod.Storage, key string, st synod.AcceptorState) {
	t.Helper()
	if err := s.Store(t.Context(), key, st); err != nil {
		t.Fatalf("Store(%q, %s) error: %v", key, formatState(st), err)
	}
}

func checkState(t *testing.T, s synod.Storage, key string, want synod.AcceptorState) {
	t.Helper()
	if got := mustLoad(t, s, key); !sameState(got, want) {
		t.Errorf("Load(%q) = %s, want %s", key, formatState(got), formatState(want))
	}
}

func storageMissingKey(t *testing.T, s synod.Storage) {
	for _, key := range []string{"absent", "a", "\x00", "x/y/z"} {
		st, err := s.Load(t.Context(), key)
		if err != nil {
			t.Fatalf("Load(%q) of a missing key: error %v, want nil", key, err)
		}
		if !sameState(st, synod.AcceptorState{}) {
			t.Errorf("Load(%q) of a missing key = %s, want the zero state", key, formatState(st))
		}
	}
	// A stored key does not make its prefixes or extensions exist.
	mustStore(t, s, "ab", synod.AcceptorState{Promised: synod.Ballot{Counter: 1, Proposer: "p"}})
	for _, key := range []string{"a", "abc", "b"} {
		checkState(t, s, key, synod.AcceptorState{})
	}
}

func storageRoundTrip(t *testing.T, s synod.Storage) {
	states := sampleStates()
	for _, name := range slices.Sorted(maps.Keys(states)) {
		mustStore(t, s, "rt/"+name, states[name])
	}
	for _, name := range slices.Sorted(maps.Keys(states)) {
		checkState(t, s, "rt/"+name, states[name])
	}
	// Keys of any content.
	st := synod.AcceptorState{Promised: synod.Ballot{Counter: 4, Proposer: "p"}, Value: []byte("k")}
	for _, key := range []string{"\x00", "\xff\xfe", "ключ/✓", "a\x00b", string(bytes.Repeat([]byte("k"), 1024))} {
		mustStore(t, s, key, st)
		checkState(t, s, key, st)
	}
}

func storageOverwrite(t *testing.T, s synod.Storage) {
	b := func(c uint64) synod.Ballot { return synod.Ballot{Counter: c, Proposer: "p"} }
	steps := []synod.AcceptorState{
		{Promised: b(1)},
		{Promised: b(2), Accepted: b(2), Value: []byte("first")},
		{Promised: b(3), Accepted: b(2), Value: []byte("first")},
		{Promised: b(4), Accepted: b(4), Value: []byte("a much longer second value")},
		{Promised: b(5), Accepted: b(5), Value: []byte{}},
		{Promised: b(6), Accepted: b(6), Value: nil},
		{Promised: b(7), Accepted: b(7), Value: []byte("v")},
		{}, // Storage does not enforce monotonic ballots; the Acceptor does.
	}
	for i, st := range steps {
		mustStore(t, s, "key", st)
		if got := mustLoad(t, s, "key"); !sameState(got, st) {
			t.Fatalf("step %d: Load after Store = %s, want %s", i, formatState(got), formatState(st))
		}
	}
}

func storageManyKeys(t *testing.T, s synod.Storage) {
	const n = 1000
	want := make(map[string]synod.AcceptorState, n)
	for i := range n {
		// Keys that are prefixes of one another must stay distinct.
		key := fmt.Sprintf("k%d", i)
		st := synod.AcceptorState{
			Promised: synod.Ballot{Counter: uint64(i + 1), Proposer: "p"},
			Accepted: synod.Ballot{Counter: uint64(i + 1), Proposer: "p"},
			Value:    []byte(key),
		}
		want[key] = st
		mustStore(t, s, key, st)
	}
	for key, st := range want {
		checkState(t, s, key, st)
	}
}

func storageConcurrentKeys(t *testing.T, s synod.Storage) {
	const workers, writes = 16, 20
	ctx := t.Context()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key := fmt.Sprintf("worker/%d", w)
			for i := range writes {
				st := synod.AcceptorState{
					Promised: synod.Ballot{Counter: uint64(i + 1), Proposer: key},
					Accepted: synod.Ballot{Counter: uint64(i + 1), Proposer: key},
					Value:    fmt.Appendf(nil, "%s=%d", key, i),
				}
				if err := s.Store(ctx, key, st); err != nil {
					errs <- fmt.Errorf("Store(%q) #%d: %w", key, i, err)
					return
				}
				got, err := s.Load(ctx, key)
				if err != nil {
					errs <- fmt.Errorf("Load(%q) #%d: %w", key, i, err)
					return
				}
				if !sameState(got, st) {
					errs <- fmt.Errorf("Load(%q) #%d = %s, want %s", key, i, formatState(got), formatState(st))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range workers {
		key := fmt.Sprintf("worker/%d", w)
		want := synod.AcceptorState{
			Promised: synod.Ballot{Counter: writes, Proposer: key},
			Accepted: synod.Ballot{Counter: writes, Proposer: key},
			Value:    fmt.Appendf(nil, "%s=%d", key, writes-1),
		}
		checkState(t, s, key, want)
	}
}

func storageCopySemantics(t *testing.T, s synod.Storage) {
	val := []byte("original")
	st := synod.AcceptorState{Promised: synod.Ballot{Counter: 1, Proposer: "p"}, Accepted: synod.Ballot{Counter: 1, Proposer: "p"}, Value: val}
	mustStore(t, s, "copy", st)
	want := st
	want.Value = []byte("original")

	copy(val, "CHANGED!") // the caller reuses its buffer after Store
	checkState(t, s, "copy", want)

	got := mustLoad(t, s, "copy")
	copy(got.Value, "SCRIBBLE") // the caller scribbles on a loaded value
	got.Value = append(got.Value[:0], "appended over"...)
	checkState(t, s, "copy", want)

	a, b := mustLoad(t, s, "copy"), mustLoad(t, s, "copy")
	if len(a.Value) > 0 && &a.Value[0] == &b.Value[0] {
		t.Errorf("two Loads returned the same backing array; Load must return a copy")
	}
}

func storageCanceledContext(t *testing.T, s synod.Storage) {
	old := synod.AcceptorState{Promised: synod.Ballot{Counter: 1, Proposer: "p"}, Value: []byte("old")}
	updated := synod.AcceptorState{Promised: synod.Ballot{Counter: 2, Proposer: "p"}, Accepted: synod.Ballot{Counter: 2, Proposer: "p"}, Value: []byte("new")}
	mustStore(t, s, "ctx", old)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	st, err := s.Load(ctx, "ctx")
	switch {
	case err == nil:
		if !sameState(st, old) {
			t.Errorf("Load with a canceled context succeeded with %s, want %s", formatState(st), formatState(old))
		}
	case !errors.Is(err, context.Canceled):
		t.Errorf("Load with a canceled context: error %v, want nil or one matching context.Canceled", err)
	}

	err = s.Store(ctx, "ctx", updated)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Store with a canceled context: error %v, want nil or one matching context.Canceled", err)
	}
	got := mustLoad(t, s, "ctx")
	switch {
	case err == nil && !sameState(got, updated):
		t.Errorf("Store with a canceled context returned nil but Load = %s, want %s", formatState(got), formatState(updated))
	case err != nil && !sameState(got, old) && !sameState(got, updated):
		t.Errorf("Store with a canceled context failed and left %s, want the old %s or the new %s",
			formatState(got), formatState(old), formatState(updated))
	}
	t.Logf("canceled context: Store returned %v", err)
}

func storageKeyLister(t *testing.T, s synod.Storage) {
	kl, ok := s.(synod.KeyLister)
	if !ok {
		t.Skipf("%T does not implement synod.KeyLister", s)
	}
	list := func() []string {
		var keys []string
		if err := kl.Keys(t.Context(), func(k string) bool { keys = append(keys, k); return true }); err != nil {
			t.Fatalf("Keys error: %v", err)
		}
		return keys
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("Keys of an empty store = %q, want none", got)
	}
	want := []string{"\x00", "a", "a\x00", "a/b", "aa", "b", "\xff"}
	for _, k := range []string{"b", "a/b", "\xff", "a", "aa", "\x00", "a\x00"} {
		mustStore(t, s, k, synod.AcceptorState{Promised: synod.Ballot{Counter: 1, Proposer: "p"}})
	}
	mustStore(t, s, "a", synod.AcceptorState{Promised: synod.Ballot{Counter: 2, Proposer: "p"}}) // listed once
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("Keys = %q, want %q", got, want)
	}
	var got []string
	if err := kl.Keys(t.Context(), func(k string) bool { got = append(got, k); return len(got) < 3 }); err != nil {
		t.Fatalf("Keys error: %v", err)
	}
	if !slices.Equal(got, want[:3]) {
		t.Errorf("Keys stopping after 3 = %q, want %q", got, want[:3])
	}
	rl, ok := s.(synod.KeyRangeLister)
	if !ok {
		return
	}
	for _, tt := range []struct {
		start string
		want  []string
	}{{"", want}, {"a", want[1:]}, {"a\x00\x00", want[3:]}, {"ab", want[5:]}, {"\xff\x00", nil}} {
		var got []string
		if err := rl.KeysFrom(t.Context(), tt.start, func(k string) bool { got = append(got, k); return true }); err != nil {
			t.Fatalf("KeysFrom error: %v", err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("KeysFrom(%q) = %q, want %q", tt.start, got, tt.want)
		}
	}
}
