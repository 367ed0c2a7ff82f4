package actors_test

import (
	"context"
	"testing"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

func TestDelete(t *testing.T) {
	ctx := context.Background()
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	cl, err := synod.NewClient(synod.RandomProposerID("t"), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	key := actors.GrainKey(actors.DefaultKeyPrefix, "account", "alice")
	if key != "actors/account/alice" {
		t.Fatalf("GrainKey = %q", key)
	}
	if _, err := cl.Change(ctx, key, func([]byte) ([]byte, error) { return []byte("state"), nil }); err != nil {
		t.Fatal(err)
	}
	if err := actors.Delete(ctx, cl, key); err != nil {
		t.Fatal(err)
	}
	if v, err := cl.Read(ctx, key); err != nil || v != nil {
		t.Fatalf("after Delete: %q, %v", v, err)
	}
}
