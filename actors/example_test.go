package actors_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// Account is the state of an example bank account actor.
type Account struct {
	Balance int64
}

// ErrInsufficientFunds refuses a withdrawal larger than the balance.
var ErrInsufficientFunds = &actors.HandlerError{Code: "insufficient-funds", Message: "insufficient funds"}

// Transfer is the account's handler: an Int64Value deposits (or, when
// negative, withdraws) its value and replies with the new balance.
func Transfer(a Account, msg proto.Message) (Account, proto.Message, error) {
	m, ok := msg.(*wrapperspb.Int64Value)
	if !ok {
		return a, nil, fmt.Errorf("unexpected message %T", msg)
	}
	if a.Balance+m.Value < 0 {
		return a, nil, fmt.Errorf("withdraw %d from %d: %w", -m.Value, a.Balance, ErrInsufficientFunds)
	}
	a.Balance += m.Value
	return a, wrapperspb.Int64(a.Balance), nil
}

// An actor whose state is a replicated register: each message is applied
// in a CASPaxos round, with the handler as the change function.
func Example() {
	// Three in-process acceptors; in production, acceptor services over NATS.
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg, err := synod.NewClient(synod.RandomProposerID("node1"), cfg, tr)
	if err != nil {
		panic(err)
	}
	props, err := actors.Props(reg, Transfer)
	if err != nil {
		panic(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	pid, err := sys.Root.SpawnNamed(props, "account-42") // register "actors/account-42"
	if err != nil {
		panic(err)
	}
	acct := actors.Local(sys, pid)

	ctx := context.Background()
	for _, amount := range []int64{100, -30, -500} {
		res, err := actors.Request(ctx, acct, wrapperspb.Int64(amount))
		switch {
		case errors.Is(err, ErrInsufficientFunds):
			fmt.Println("refused:", amount)
		case errors.Is(err, synod.ErrIndeterminate):
			fmt.Println("unknown outcome; retry with the same request ID")
		case err != nil:
			fmt.Println("error:", err)
		default:
			fmt.Println("balance:", res.(*wrapperspb.Int64Value).GetValue())
		}
	}
	a, err := actors.Read[Account](ctx, acct)
	if err != nil {
		panic(err)
	}
	fmt.Println("read:", a.Balance)
	// Output:
	// balance: 100
	// balance: 70
	// refused: -500
	// read: 70
}
