package natscluster_test

import (
	"log"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/natscluster"
)

// A cluster member that uses NATS for membership. Run the same program on
// several hosts, each with its own advertised address, against one NATS
// system.
func Example() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close() // the provider never closes the connection

	provider := natscluster.New(nc,
		natscluster.WithSubjectPrefix("shop"),
		natscluster.WithHeartbeatInterval(500*time.Millisecond),
		natscluster.WithTTL(3*time.Second),
		natscluster.WithLogger(slog.Default()),
	)

	cart := cluster.NewKind("cart", actor.PropsFromFunc(func(ctx actor.Context) {
		// handle cart messages
	}))
	system := actor.NewActorSystem()
	// Members announce the actor system's address: advertise one that
	// the other members can reach.
	rc := remote.Configure("0.0.0.0", 8090, remote.WithAdvertisedHost("10.0.0.5:8090"))
	cfg := cluster.Configure("carts", provider, disthash.New(), rc, cluster.WithKinds(cart))
	c := cluster.New(system, cfg)
	c.StartMember() // returns with the current membership

	// ... c.Request("cart-42", "cart", msg) ...

	c.Shutdown(true) // publishes a leave on shop.carts.members.leave
}
