package pebblestore_test

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/protosynod/protosynod/internal/metrictest"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

func TestStoreMetrics(t *testing.T) {
	reader := metrictest.New()
	s, err := pebblestore.Open("db", pebblestore.WithFS(vfs.NewMem()), pebblestore.WithMeterProvider(reader.Provider))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	st := synod.AcceptorState{Promised: synod.Ballot{Counter: 1, Proposer: "p"}}
	if err := s.Store(ctx, "a", st); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreBatch(ctx, []pebblestore.KeyState{{Key: "b", State: st}, {Key: "c", State: st}, {Key: "d", State: st}}); err != nil {
		t.Fatal(err)
	}
	if got := reader.Get(t, "synod.storage.sync.duration"); got.N != 2 || got.Sum <= 0 {
		t.Errorf("sync.duration = %+v, want 2 positive observations", got)
	}
	if got := reader.Get(t, "synod.storage.batch.size"); got.N != 2 || got.Sum != 4 {
		t.Errorf("batch.size = %+v, want 2 commits of 4 registers in all", got)
	}
}
