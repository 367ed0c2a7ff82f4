package persistence_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/types/known/wrapperspb"

	synodpersistence "github.com/protosynod/protosynod/persistence"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// account is a persistent actor: deposits (*wrapperspb.Int32Value) are its
// events, its balance (*wrapperspb.Int64Value) its snapshot.
type account struct {
	persistence.Mixin
	balance int64
}

type getBalance struct{}

func (a *account) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *wrapperspb.Int64Value: // the snapshot, during recovery
		a.balance = m.GetValue()
	case *wrapperspb.Int32Value: // a deposit: live, or replayed during recovery
		// Take the sender first: when PersistReceive triggers a snapshot
		// request, protoactor's context no longer knows the current sender.
		sender := ctx.Sender()
		if !a.Recovering() {
			a.PersistReceive(m) // panics, and so restarts the actor, if it fails
		}
		a.balance += int64(m.GetValue())
		if sender != nil {
			ctx.Send(sender, a.balance)
		}
	case *persistence.RequestSnapshot:
		a.PersistSnapshot(wrapperspb.Int64(a.balance))
	case *getBalance:
		ctx.Respond(a.balance)
	}
}

// Example runs a persistent actor over three in-process acceptors, stops it,
// and starts it again: it recovers its balance from its register.
func Example() {
	transport, cfg, _ := synodtest.NewLocalCluster(3)
	client, err := synod.NewClient(synod.RandomProposerID("node-1"), cfg, transport)
	if err != nil {
		panic(err)
	}
	provider, err := synodpersistence.NewProvider(client, synodpersistence.WithSnapshotInterval(3))
	if err != nil {
		panic(err)
	}

	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()
	props := actor.PropsFromProducer(func() actor.Actor { return &account{} },
		actor.WithReceiverMiddleware(persistence.Using(provider)))

	pid, _ := system.Root.SpawnNamed(props, "alice")
	for _, amount := range []int32{10, 20, 30, 40} {
		balance, _ := system.Root.RequestFuture(pid, wrapperspb.Int32(amount), 5*time.Second).Result()
		fmt.Println("deposited", amount, "balance", balance)
	}
	_ = system.Root.PoisonFuture(pid).Wait()

	pid, _ = system.Root.SpawnNamed(props, "alice")
	balance, _ := system.Root.RequestFuture(pid, &getBalance{}, 5*time.Second).Result()
	fmt.Println("after restart, balance", balance)
	// Output:
	// deposited 10 balance 10
	// deposited 20 balance 30
	// deposited 30 balance 60
	// deposited 40 balance 100
	// after restart, balance 100
}
