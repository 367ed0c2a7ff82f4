package synodtest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

func TestMemoryStorageConformance(t *testing.T) {
	synodtest.TestStorage(t, func(*testing.T) synod.Storage { return synod.NewMemoryStorage() })
}

// brokenStorage wraps a MemoryStorage and breaks one promise of the Storage
// contract, to show that TestStorage notices.
type brokenStorage struct {
	*synod.MemoryStorage
	kind string
	mu   sync.Mutex
	raw  map[string]synod.AcceptorState
}

func (s *brokenStorage) Load(ctx context.Context, key string) (synod.AcceptorState, error) {
	switch s.kind {
	case "alias":
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.raw[key], nil
	case "missing-error":
		st, err := s.MemoryStorage.Load(ctx, key)
		if err == nil && st.Promised.IsZero() && st.Accepted.IsZero() && st.Value == nil {
			return st, errors.New("not found")
		}
		return st, err
	}
	return s.MemoryStorage.Load(ctx, key)
}

func (s *brokenStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	switch s.kind {
	case "alias":
		s.mu.Lock()
		defer s.mu.Unlock()
		s.raw[key] = st
		return nil
	case "empty-to-nil":
		if len(st.Value) == 0 {
			st.Value = nil
		}
	case "short-keys":
		if len(key) > 2 {
			key = key[:2]
		}
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

// TestStorageBroken runs the suite on one broken store when the parent test
// asks for it through the environment; it is a no-op otherwise.
func TestStorageBroken(t *testing.T) {
	kind := os.Getenv("SYNODTEST_BROKEN_STORAGE")
	if kind == "" {
		t.Skip("run by TestStorageCatchesBrokenStores")
	}
	synodtest.TestStorage(t, func(*testing.T) synod.Storage {
		return &brokenStorage{MemoryStorage: synod.NewMemoryStorage(), kind: kind, raw: map[string]synod.AcceptorState{}}
	})
}

func TestStorageCatchesBrokenStores(t *testing.T) {
	tests := []struct {
		kind     string
		wantFail string // a subtest that must fail
	}{
		{"alias", "CopySemantics"},
		{"missing-error", "MissingKey"},
		{"empty-to-nil", "RoundTrip"},
		{"short-keys", "ManyKeys"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStorageBroken$", "-test.v")
			cmd.Env = append(os.Environ(), "SYNODTEST_BROKEN_STORAGE="+tt.kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("TestStorage passed a store that breaks %q:\n%s", tt.kind, out)
			}
			if want := "--- FAIL: TestStorageBroken/" + tt.wantFail; !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		})
	}
}
