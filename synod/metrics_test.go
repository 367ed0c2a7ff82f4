package synod_test

import (
	"context"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/metrictest"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

func TestClientMetrics(t *testing.T) {
	reader := metrictest.New()
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	// A long phase timeout: the refused fast-path accept below must hear all
	// three refusals (the retry waits a quarter of it for the last one), or the
	// change it carried may be somewhere and the retry is rightly
	// indeterminate. Nothing here is lost, so no phase waits that long.
	slow := synod.WithPhaseTimeout(10 * time.Second)
	a := newTestClient(t, "a", cfg, tr, synod.WithMeterProvider(reader.Provider), slow)
	b := newTestClient(t, "b", cfg, tr, slow)
	ctx := context.Background()

	// Three changes from a: a two-phase round, then two fast-path hits.
	// Then a lean read (the local cluster is a Reader) and a read through a
	// round, which is a fast-path hit too: a read is the identity change.
	for range 3 {
		if _, err := a.Change(ctx, "k", incr); err != nil {
			t.Fatal(err)
		}
	}
	// b moves the ballot on, so a's next fast-path accept is refused: a
	// conflict, then a two-phase round.
	if _, err := b.Change(ctx, "k", incr); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Change(ctx, "k", incr); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadRound(ctx, "k"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		attrs []string
		want  float64
	}{
		{"synod.client.change.duration", []string{"op", "change", "outcome", "ok"}, 4},
		{"synod.client.change.duration", []string{"op", "read"}, 2},
		{"synod.client.change.rounds", nil, 6},
		{"synod.client.fast_path", []string{"result", "hit"}, 3}, // 2 changes and the read
		{"synod.client.fast_path", []string{"result", "fallback"}, 1},
		{"synod.client.conflicts", nil, 1},
		{"synod.client.indeterminate", nil, 0},
		{"synod.client.reads", []string{"path", "round"}, 1},
		{"synod.client.reads", []string{"path", "quorum"}, 1},
	}
	for _, tt := range tests {
		if got := reader.Get(t, tt.name, metrictest.Attrs(tt.attrs...)...); got.N != tt.want {
			t.Errorf("%s %v: got %v, want %v", tt.name, tt.attrs, got.N, tt.want)
		}
	}
	// Rounds: 1 + 1 + 1 + 2 (the refused fast path, then a round) + the reads.
	if got := reader.Get(t, "synod.client.change.rounds"); got.Sum < 6 {
		t.Errorf("rounds sum = %v, want at least 6", got.Sum)
	}
}
