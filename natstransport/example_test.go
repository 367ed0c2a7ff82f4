package natstransport_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// Example serves three acceptors over an embedded NATS server and changes a
// register through them. In production each acceptor is its own
// synod-acceptor process with a Pebble data directory, and the connection
// options (URLs, credentials, TLS) are the caller's.
func Example() {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		log.Fatal("nats server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Acceptor side: one Service per acceptor.
	cfg := synod.Config{Acceptors: []string{"a0", "a1", "a2"}}
	for _, id := range cfg.Acceptors {
		nc, err := nats.Connect(ns.ClientURL(), nats.Name("acceptor-"+id))
		if err != nil {
			log.Fatal(err)
		}
		defer nc.Close()
		svc, err := natstransport.Serve(ctx, nc, "demo", synod.NewAcceptor(id, synod.NewMemoryStorage()))
		if err != nil {
			log.Fatal(err)
		}
		defer svc.Stop(ctx)
	}

	// Proposer side: one Transport per process, shared by its Clients.
	nc, err := nats.Connect(ns.ClientURL(), nats.Name("proposer"))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	tr, err := natstransport.NewTransport(nc, "demo")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	client, err := synod.NewClient(synod.RandomProposerID("example"), cfg, tr)
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		v, err := client.Change(ctx, "greeting", func(cur []byte) ([]byte, error) {
			return []byte(string(cur) + "!"), nil // never modify cur
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("hello%s\n", v)
	}
	// Output:
	// hello!
	// hello!!
	// hello!!!
}
