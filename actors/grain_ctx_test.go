package actors_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/actors"
)

// stuckLookup is an identity lookup that never answers until released, like
// protoactor's lookup waiting for a member that crashed.
type stuckLookup struct{ release chan struct{} }

func (l stuckLookup) Get(*cluster.ClusterIdentity) *actor.PID      { <-l.release; return nil }
func (stuckLookup) RemovePid(*cluster.ClusterIdentity, *actor.PID) {}
func (stuckLookup) Setup(*cluster.Cluster, []string, bool)         {}
func (stuckLookup) Shutdown()                                      {}

// A grain request returns when its context ends, even while the cluster's
// identity lookup is stuck.
func TestGrainRequestHonoursContext(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer sys.Shutdown()
	lookup := stuckLookup{release: make(chan struct{})}
	defer close(lookup.release)
	c := cluster.New(sys, cluster.Configure("ctxtest", nil, lookup, remote.Configure("127.0.0.1", 0)))
	c.IdentityLookup = lookup // what StartMember would set, without starting remoting

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := actors.Request(ctx, actors.Grain(c, "id-1", "account"), wrapperspb.Int64(1))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want one wrapping context.DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a grain request ignored its 200ms context while the lookup was stuck")
	}
}
