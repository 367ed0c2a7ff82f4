package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// synodEngine is protosynod's raw registers: clients proposer clients in
// this process (see config.clients), each with its own NATS connection,
// against the deployment's acceptors.
type synodEngine struct {
	conns   []*nats.Conn
	trs     []*natstransport.Transport
	clients []*synod.Client
}

func newSynodEngine(d *deployment, thrifty, nearness bool, clients int) (*synodEngine, error) {
	e := &synodEngine{}
	cfg := synod.Config{Acceptors: d.acceptors}
	for i := range clients {
		u := d.urls[i%len(d.urls)]
		nc, err := nats.Connect(u, nats.Name(fmt.Sprintf("bench-proposer-%d", i)))
		if err != nil {
			e.close()
			return nil, err
		}
		e.conns = append(e.conns, nc)
		var opts []natstransport.Option
		if !nearness {
			opts = append(opts, natstransport.WithNearness(0))
		}
		tr, err := natstransport.NewTransport(nc, d.cluster, opts...)
		if err != nil {
			e.close()
			return nil, err
		}
		e.trs = append(e.trs, tr)
		cl, err := synod.NewClient(synod.RandomProposerID(fmt.Sprintf("bench%d", i)), cfg, tr, synod.WithDefaultTimeout(10*time.Second), synod.WithThrifty(thrifty))
		if err != nil {
			e.close()
			return nil, err
		}
		e.clients = append(e.clients, cl)
	}
	return e, nil
}

func (e *synodEngine) name() string { return "protosynod" }

// nearNote says, for the table's footer, how each proposer's transport
// ranked the acceptors at the end (tiers of distance, nearest first, see
// natstransport.Transport.Near), or that they did not measure (off).
func (e *synodEngine) nearNote(off bool) string {
	if off {
		return ", nearness off"
	}
	var parts []string
	for i, tr := range e.trs {
		near := "none nearer"
		if tiers := tr.Near(); tiers != nil {
			var ts []string
			for _, tier := range tiers {
				ts = append(ts, strings.Join(tier, "+"))
			}
			near = strings.Join(ts, " > ")
		}
		parts = append(parts, fmt.Sprintf("proposer %d: %s", i, near))
	}
	return ", near acceptors: " + strings.Join(parts, ", ")
}

// owner returns the client that owns key. Each key is routed to one proposer,
// as protoactor's placement routes an actor's messages to its one activation:
// a key changed by one proposer keeps its one-round-trip entry, while keys
// bouncing between proposers would pay a refused accept and a two-phase retry
// most of the time. The hot-key workload therefore runs on one proposer; its
// 64 writers queue behind one another there, as messages do in an actor's
// mailbox.
func (e *synodEngine) owner(key string) *synod.Client {
	h := fnv.New32a()
	h.Write([]byte(key))
	return e.clients[h.Sum32()%uint32(len(e.clients))]
}

func (e *synodEngine) worker(_, valueBytes int) op {
	f := newValue(valueBytes)
	return func(ctx context.Context, key string) error {
		_, err := e.owner(key).Change(ctx, key, func(old []byte) ([]byte, error) { return f(old), nil })
		return err
	}
}

func (e *synodEngine) close() {
	for _, tr := range e.trs {
		tr.Close()
	}
	for _, nc := range e.conns {
		nc.Close()
	}
}
