// Package acceptortest runs real acceptors for the tests of the layers above
// synod: natstransport services on an embedded nats-server, each over a
// Pebble store in its own directory, so they can be stopped and started again
// on their data the way acceptor processes restart.
package acceptortest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

// Cluster is n acceptors a0..a(n-1) of one cluster name on one embedded
// nats-server.
type Cluster struct {
	t      testing.TB
	Server *server.Server
	Name   string
	IDs    []string
	dirs   []string
	svcs   []*natstransport.Service
	stores []*pebblestore.Store
}

// Start serves n acceptors of cluster name; t's cleanup stops them.
func Start(t testing.TB, name string, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Server: natstest.RunServer(t), Name: name}
	for i := range n {
		c.IDs = append(c.IDs, fmt.Sprintf("a%d", i))
		c.dirs = append(c.dirs, t.TempDir())
	}
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

// Config is the acceptor set with majority quorums.
func (c *Cluster) Config() synod.Config { return synod.Config{Acceptors: c.IDs} }

// Start opens every store and serves every acceptor (again, after Stop).
func (c *Cluster) Start() {
	c.t.Helper()
	for i, id := range c.IDs {
		st, err := pebblestore.Open(c.dirs[i], pebblestore.WithIdentity(c.Name, id))
		if err != nil {
			c.t.Fatalf("open store of %s: %v", id, err)
		}
		c.stores = append(c.stores, st)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		svc, err := natstransport.Serve(ctx, natstest.Connect(c.t, c.Server), c.Name, synod.NewAcceptor(id, st))
		cancel()
		if err != nil {
			c.t.Fatalf("serve %s: %v", id, err)
		}
		c.svcs = append(c.svcs, svc)
	}
}

// Stop stops every acceptor and closes its store.
func (c *Cluster) Stop() {
	c.t.Helper()
	for i, svc := range c.svcs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := svc.Stop(ctx); err != nil {
			c.t.Errorf("stop %s: %v", c.IDs[i], err)
		}
		cancel()
		if err := c.stores[i].Close(); err != nil {
			c.t.Errorf("close store of %s: %v", c.IDs[i], err)
		}
	}
	c.svcs, c.stores = nil, nil
}

// Transport returns a proposer-side transport on its own connection, closed
// by t's cleanup.
func (c *Cluster) Transport(t testing.TB) *natstransport.Transport {
	t.Helper()
	tr, err := natstransport.NewTransport(natstest.Connect(t, c.Server), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}
