//go:build !race

// protoactor-go's cluster has data races of its own, so this test (like
// actors' cluster test) is left out of -race runs.

package scenario_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/protosynod/protosynod/examples/cluster/scenario"
	"github.com/protosynod/protosynod/internal/natstest"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the scenario's traffic (0: random, logged)")

// The whole example in process: embedded NATS, three Pebble acceptors, three
// members and a client; the scenario's invariants hold, including after the
// crash of the member hosting the most grains.
func TestScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of seven nodes and crashes a member (about 10s)")
	}
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	ns := natstest.RunServer(t)
	cfg := scenario.DefaultConfig(ns.ClientURL())
	cfg.Seed = seed
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	dir := t.TempDir()
	for _, id := range cfg.Acceptors {
		a, err := scenario.StartAcceptor(ctx, cfg, id, dir+"/"+id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := a.Close(context.Background()); err != nil {
				t.Errorf("close acceptor %s: %v", id, err)
			}
		})
	}
	var members []*scenario.Node
	for i := range 3 {
		m, err := scenario.StartMember(ctx, cfg, fmt.Sprintf("m%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	client, err := scenario.StartClient(ctx, cfg, "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop()
	for client.Members() < len(members) {
		select {
		case <-ctx.Done():
			t.Fatalf("client sees %d members, want %d", client.Members(), len(members))
		case <-time.After(10 * time.Millisecond):
		}
	}

	var out bytes.Buffer
	rep, err := scenario.Run(ctx, scenario.Env{Client: client, Members: members, Out: &out, Seed: seed})
	t.Logf("narration:\n%s", out.String())
	for _, m := range members {
		if m.ID != rep.Crashed {
			m.Stop()
		}
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f := rep.Failed(); len(f) > 0 {
		t.Fatalf("failed checks without an error: %+v", f)
	}
	if len(rep.Checks) < 12 {
		t.Errorf("%d checks, want at least 12", len(rep.Checks))
	}
	if rep.Crashed == "" || len(rep.Moved) == 0 {
		t.Fatalf("no member crashed (%q) or no grain moved (%v)", rep.Crashed, rep.Moved)
	}
	if rep.Failover <= 0 || rep.Failover > 30*time.Second {
		t.Errorf("failover took %v", rep.Failover)
	}
	// Step 3 crashes a member only after 50 acknowledged operations; how many
	// more are acknowledged depends on the machine's speed (a throughput, not
	// something a test may assert), so only that floor is checked.
	if rep.Ops < 50 {
		t.Errorf("%d operations acknowledged, want at least 50", rep.Ops)
	}
	for _, want := range []string{"LAUNCHED by alice+bob", "refused (overdraft)", "failover took", "all 12 invariants held"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("narration lacks %q", want)
		}
	}
	t.Logf("crashed %s, moved %v, failover %v, %d ops, %d retried", rep.Crashed, rep.Moved, rep.Failover, rep.Ops, rep.Retried)
}

// Run refuses to start without a client.
func TestRunNeedsClient(t *testing.T) {
	if _, err := scenario.Run(context.Background(), scenario.Env{}); err == nil {
		t.Fatal("Run without a client: nil error")
	}
}
