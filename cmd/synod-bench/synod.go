package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

// synodEngine is protosynod: one acceptor per nats-server on Pebble (fsync
// before every reply), and one proposer client per nats-server in this process.
type synodEngine struct {
	conns    []*nats.Conn
	services []*natstransport.Service
	stores   []*pebblestore.Store
	trs      []*natstransport.Transport
	clients  []*synod.Client
}

const benchCluster = "bench"

func newSynodEngine(ctx context.Context, c *natsCluster, dir string, log *slog.Logger) (*synodEngine, error) {
	e := &synodEngine{}
	var cfg synod.Config
	for i := range c.servers {
		id := fmt.Sprintf("a%d", i)
		cfg.Acceptors = append(cfg.Acceptors, id)
		st, err := pebblestore.Open(filepath.Join(dir, "acceptor-"+id), pebblestore.WithIdentity(benchCluster, id))
		if err != nil {
			e.close()
			return nil, err
		}
		e.stores = append(e.stores, st)
		nc, err := nats.Connect(c.url(i), nats.Name("acceptor-"+id))
		if err != nil {
			e.close()
			return nil, err
		}
		e.conns = append(e.conns, nc)
		svc, err := natstransport.Serve(ctx, nc, benchCluster, synod.NewAcceptor(id, st), natstransport.WithLogger(log))
		if err != nil {
			e.close()
			return nil, err
		}
		e.services = append(e.services, svc)
	}
	for i := range c.servers {
		nc, err := nats.Connect(c.url(i), nats.Name(fmt.Sprintf("proposer-%d", i)))
		if err != nil {
			e.close()
			return nil, err
		}
		e.conns = append(e.conns, nc)
		tr, err := natstransport.NewTransport(nc, benchCluster)
		if err != nil {
			e.close()
			return nil, err
		}
		e.trs = append(e.trs, tr)
		cl, err := synod.NewClient(synod.RandomProposerID(fmt.Sprintf("bench%d", i)), cfg, tr, synod.WithDefaultTimeout(10*time.Second))
		if err != nil {
			e.close()
			return nil, err
		}
		e.clients = append(e.clients, cl)
	}
	return e, nil
}

func (e *synodEngine) name() string { return "protosynod" }

// client routes each key to the proposer that owns it, as protoactor's
// placement routes an actor's messages to its one activation: a key changed by
// one proposer keeps its one-round-trip entry, while keys bouncing between
// proposers would pay a refused accept and a two-phase retry most of the time.
// The hot-key workload therefore runs on one proposer; its 64 writers queue
// behind one another there, as messages do in an actor's mailbox.
func (e *synodEngine) client(int) changeFunc {
	return func(ctx context.Context, key string, f func([]byte) []byte) error {
		h := fnv.New32a()
		h.Write([]byte(key))
		cl := e.clients[h.Sum32()%uint32(len(e.clients))]
		_, err := cl.Change(ctx, key, func(old []byte) ([]byte, error) { return f(old), nil })
		return err
	}
}

func (e *synodEngine) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tr := range e.trs {
		tr.Close()
	}
	for _, s := range e.services {
		s.Stop(ctx)
	}
	for _, nc := range e.conns {
		nc.Close()
	}
	for _, st := range e.stores {
		st.Close()
	}
}
