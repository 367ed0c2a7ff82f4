//go:build !race

package actors_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	clustertest "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// Grains keyed by their cluster identity survive the loss of the member
// that hosts them: the grain is activated again on another member, on the
// state its register holds.
func TestClusterGrainMovesWithItsState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member protoactor cluster (about 5s)")
	}
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	regs := newClients(t, tr, cfg, seed, 3)
	agent := clustertest.NewInMemAgent()
	name := fmt.Sprintf("actors-test-%d", seed%1000)

	members := make([]*cluster.Cluster, 3)
	for i := range members {
		props, err := actors.Props(regs[i], bank)
		if err != nil {
			t.Fatal(err)
		}
		sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(slog.DiscardHandler)
		}))
		c := cluster.New(sys, cluster.Configure(name, clustertest.NewTestProvider(agent), disthash.New(),
			remote.Configure("127.0.0.1", 0), cluster.WithKinds(cluster.NewKind("account", props))))
		members[i] = c
		c.StartMember() // sleeps 1s; not concurrently: grpclog's global logger
	}
	stopped := make([]bool, len(members))
	t.Cleanup(func() {
		for i, c := range members {
			if !stopped[i] {
				c.Shutdown(false)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitMembers := func(want int, cs ...*cluster.Cluster) {
		t.Helper()
		for _, c := range cs {
			for c.MemberList.Length() != want {
				select {
				case <-ctx.Done():
					t.Fatalf("%s sees %d members, want %d", c.ActorSystem.Address(), c.MemberList.Length(), want)
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}
	waitMembers(3, members...)

	deposit := func(c *cluster.Cluster, who string, n int64) int64 {
		t.Helper()
		v, err := add(ctx, actors.Grain(c, who, "account"), n, actors.WithRetry(time.Second))
		if err != nil {
			t.Fatalf("deposit %d to %s: %v", n, who, err)
		}
		return v
	}
	for i := range 5 {
		deposit(members[i%3], "alice", 10)
		deposit(members[(i+1)%3], "bob", 1)
	}

	// Stop the member that hosts alice; ask from another one.
	host := -1
	pid := members[0].Get("alice", "account")
	for i, c := range members {
		if c.ActorSystem.Address() == pid.Address {
			host = i
		}
	}
	if host < 0 {
		t.Fatalf("alice's activation %v is on no member", pid)
	}
	from := members[(host+1)%3]
	t.Logf("alice is on member %d (%s); stopping it", host, pid.Address)
	members[host].Shutdown(true)
	stopped[host] = true
	waitMembers(2, from, members[(host+2)%3])

	if got := deposit(from, "alice", 10); got != 60 {
		t.Fatalf("alice's balance after the move = %d, want 60", got)
	}
	if got := deposit(from, "bob", 1); got != 6 {
		t.Fatalf("bob's balance = %d, want 6", got)
	}
	moved := from.Get("alice", "account")
	if moved == nil || moved.Address == pid.Address {
		t.Fatalf("alice is still at %v after its member stopped", moved)
	}
	if got := balance(t, actors.Grain(members[(host+2)%3], "alice", "account")); got != 60 {
		t.Fatalf("alice reads %d from another member, want 60", got)
	}
	// The register key is the grain's cluster identity.
	v, err := regs[0].Read(ctx, actors.DefaultKeyPrefix+"account/alice")
	if err != nil || len(v) == 0 {
		t.Fatalf("register account/alice: %q, %v", v, err)
	}
}
