package persistence_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/persistence"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// TestProviderDelete: an actor's journal deleted for good recovers nothing.
func TestProviderDelete(t *testing.T) {
	ctx := context.Background()
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	cl, err := synod.NewClient(synod.RandomProposerID("t"), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := persistence.NewProvider(cl)
	if err != nil {
		t.Fatal(err)
	}
	st := p.NewState()
	st.PersistEvent("acct", 0, wrapperspb.String("e0"))
	st.PersistEvent("acct", 1, wrapperspb.String("e1"))
	if err := p.Delete(ctx, "acct"); err != nil {
		t.Fatal(err)
	}
	n := 0
	p.NewState().GetEvents("acct", 0, 0, func(any) { n++ })
	if n != 0 {
		t.Fatalf("%d events recovered after Delete", n)
	}
	if snap, _, ok := p.NewState().GetSnapshot("acct"); ok || snap != nil {
		t.Fatalf("snapshot recovered after Delete: %v", snap)
	}
	// A new actor of that name starts over at index 0.
	st = p.NewState()
	st.PersistEvent("acct", 0, wrapperspb.String("fresh"))
}
