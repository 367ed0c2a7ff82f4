package pebblestore_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

// v1Dir is a data directory written by the code of record format version 1
// (before configurations and deletion existed), committed so that every later
// version is tested against it. SYNOD_WRITE_TESTDATA=1 rewrites it: do that
// only with the code of that version.
const v1Dir = "testdata/v1-datadir"

var v1States = map[string]synod.AcceptorState{
	"k1": {Promised: synod.Ballot{Counter: 7, Proposer: "p/1"}, Accepted: synod.Ballot{Counter: 6, Proposer: "p/1"}, Value: []byte("hello")},
	"k2": {Promised: synod.Ballot{Counter: 3, Proposer: "p/2"}},
	"k3": {Promised: synod.Ballot{Counter: 9, Proposer: "p/2"}, Accepted: synod.Ballot{Counter: 9, Proposer: "p/2"}},
}

// copyDir copies src to a new temporary directory: Pebble writes to the
// directories it opens.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestOldDataDirReadable opens the version 1 data directory: its identity and
// registers read back, it has no configuration, and the new records
// (configuration, deletion) can be written to it.
func TestOldDataDirReadable(t *testing.T) {
	ctx := context.Background()
	if os.Getenv("SYNOD_WRITE_TESTDATA") == "1" {
		_ = os.RemoveAll(v1Dir)
		s, err := pebblestore.Open(v1Dir, pebblestore.WithIdentity("old", "a1"))
		if err != nil {
			t.Fatal(err)
		}
		for k, st := range v1States {
			if err := s.Store(ctx, k, st); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", v1Dir)
		return
	}
	dir := copyDir(t, v1Dir)
	s, err := pebblestore.Open(dir, pebblestore.WithIdentity("old", "a1"))
	if err != nil {
		t.Fatalf("open the version 1 data directory: %v", err)
	}
	defer s.Close()
	for k, want := range v1States {
		got, err := s.Load(ctx, k)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Load(%s) = %+v, %v; want %+v", k, got, err, want)
		}
	}
	checkV2(t, s)
}

// checkV2 writes the records added after version 1 to s and reads them back.
func checkV2(t *testing.T, s *pebblestore.Store) {
	t.Helper()
	ctx := context.Background()
	if _, ok, err := s.LoadConfig(ctx); ok || err != nil {
		t.Fatalf("LoadConfig of a directory without one: %v, %v", ok, err)
	}
	cfg := synod.Config{Acceptors: []string{"a1", "a2", "a3", "a4"}, Epoch: 3, Floor: 17}
	if err := s.StoreConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.LoadConfig(ctx); !ok || err != nil || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("LoadConfig = %+v, %v, %v; want %+v", got, ok, err, cfg)
	}
	if err := s.Delete(ctx, "k3"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Load(ctx, "k3"); err != nil || !reflect.DeepEqual(st, synod.AcceptorState{}) {
		t.Fatalf("deleted k3 loads %+v, %v", st, err)
	}
	var keys []string
	if err := s.Keys(ctx, func(k string) bool { keys = append(keys, k); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys, []string{"k1", "k2"}) {
		t.Fatalf("keys after the delete: %q", keys)
	}
}

// TestAcceptorConfigSurvivesReopen: an acceptor over a Store keeps refusing
// older epochs after the store is closed and reopened, and a forgotten key
// stays gone.
func TestAcceptorConfigSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := pebblestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := synod.NewAcceptor("a1", s)
	b := synod.Ballot{Counter: 1, Proposer: "p"}
	if _, err := a.Accept(ctx, synod.AcceptRequest{Key: "gone", Ballot: b}); err != nil {
		t.Fatal(err)
	}
	cfg := synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 2, Floor: 5}
	if _, err := a.Install(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Forget(ctx, "gone", 5); !ok || err != nil {
		t.Fatalf("Forget = %v, %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = pebblestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a = synod.NewAcceptor("a1", s)
	if _, err := a.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: synod.Ballot{Counter: 9, Proposer: "p"}, Epoch: 1}); !errors.Is(err, synod.ErrStaleEpoch) {
		t.Fatalf("epoch 1 after reopen: %v, want ErrStaleEpoch", err)
	}
	if st, err := a.State(ctx, "gone"); err != nil || !st.Accepted.IsZero() {
		t.Fatalf("forgotten key after reopen: %+v, %v", st, err)
	}
}
