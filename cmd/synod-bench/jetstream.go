package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsCluster is n embedded nats-servers joined by routes on loopback, with
// JetStream on and every write synced before it is acknowledged
// (sync_interval: always), the durability an acceptor gives.
type natsCluster struct {
	servers []*server.Server
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startNATSCluster(n int, dir string) (*natsCluster, error) {
	ports := make([]int, n)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	c := &natsCluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("js%d", i)),
			SyncAlways: true,
		}
		if n > 1 {
			opts.Cluster = server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[i]}
			for j := range n {
				if j != i {
					opts.Routes = append(opts.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", ports[j]))...)
				}
			}
		}
		s, err := server.NewServer(opts)
		if err != nil {
			c.shutdown()
			return nil, fmt.Errorf("nats-server %d: %w", i, err)
		}
		go s.Start()
		c.servers = append(c.servers, s)
	}
	for i, s := range c.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			c.shutdown()
			return nil, fmt.Errorf("nats-server %d not ready", i)
		}
	}
	return c, nil
}

func (c *natsCluster) url(i int) string { return c.servers[i%len(c.servers)].ClientURL() }

func (c *natsCluster) shutdown() {
	for _, s := range c.servers {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// jsKV is JetStream KV compare-and-set: Get, then Update with the revision
// read, over clients connections (see config.clients).
type jsKV struct {
	conns []*nats.Conn
	kvs   []jetstream.KeyValue
}

// jsBucket is the KV bucket the bench uses.
const jsBucket = "synod_bench"

func newJSKV(ctx context.Context, urls []string, replicas, clients int) (*jsKV, error) {
	e := &jsKV{}
	for i := range clients {
		u := urls[i%len(urls)]
		nc, err := nats.Connect(u, nats.Name(fmt.Sprintf("bench-jetstream-%d", i)))
		if err != nil {
			e.close()
			return nil, err
		}
		e.conns = append(e.conns, nc)
	}
	js, err := jetstream.New(e.conns[0])
	if err != nil {
		e.close()
		return nil, err
	}
	// A fresh cluster may still be electing its meta leader, and the new
	// stream its leader: each JetStream API call is retried for a while.
	deadline := time.Now().Add(30 * time.Second)
	retry := func(what string, f func() error) error {
		for {
			err := f()
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				if err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var s jetstream.Stream
	err = retry("create KV bucket", func() error {
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: jsBucket, Replicas: replicas, Storage: jetstream.FileStorage})
		return err
	})
	if err == nil {
		err = retry("look up the KV stream", func() (err error) {
			s, err = js.Stream(ctx, "KV_"+jsBucket)
			return err
		})
	}
	if err == nil {
		// Direct gets may be served by a lagging replica; a fair CAS needs
		// reads from the stream leader, as BASELINES.md notes.
		cfg := s.CachedInfo().Config
		cfg.AllowDirect = false
		err = retry("disable direct get", func() error {
			_, err := js.UpdateStream(ctx, cfg)
			return err
		})
	}
	if err != nil {
		e.close()
		return nil, err
	}
	for _, nc := range e.conns {
		js, err := jetstream.New(nc)
		if err != nil {
			e.close()
			return nil, err
		}
		kv, err := js.KeyValue(ctx, jsBucket)
		if err != nil {
			e.close()
			return nil, err
		}
		e.kvs = append(e.kvs, kv)
	}
	return e, nil
}

func (e *jsKV) name() string { return "jetstream-kv" }

func (e *jsKV) worker(i, valueBytes int) op {
	kv := e.kvs[i%len(e.kvs)]
	f := newValue(valueBytes)
	return func(ctx context.Context, key string) error {
		return kvCAS(ctx, kv, key, f)
	}
}

func kvCAS(ctx context.Context, kv jetstream.KeyValue, key string, f func([]byte) []byte) error {
	var old []byte
	var rev uint64
	entry, err := kv.Get(ctx, key)
	switch {
	case err == nil:
		old, rev = entry.Value(), entry.Revision()
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, key, f(old))
	} else {
		_, err = kv.Update(ctx, key, f(old), rev)
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return errConflict
	}
	return err
}

func (e *jsKV) close() {
	for _, nc := range e.conns {
		nc.Close()
	}
}
