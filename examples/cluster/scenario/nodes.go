package scenario

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/natscluster"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

// ErrInvalidConfig reports an unusable Config.
var ErrInvalidConfig = errors.New("scenario: invalid config")

// Config says how the example's processes find each other. Every acceptor,
// member and client of one example cluster uses the same Config (only the
// node IDs differ).
type Config struct {
	// NATSURL is the NATS server (or comma-separated servers) every node
	// connects to.
	NATSURL string
	// NATSOptions are added to every node's connection options:
	// credentials, nkey, TLS (see internal/cliflags).
	NATSOptions []nats.Option
	// Cluster names both the synod acceptor cluster (subjects
	// synod.<Cluster>.…) and the protoactor cluster (protoactor.<Cluster>.…).
	Cluster string
	// Acceptors lists the acceptor IDs; a majority is the quorum.
	Acceptors []string
	// Host is the address members and clients bind protoactor remoting to.
	Host string
	// Seed seeds the synod clients' backoff jitter and the scenario's
	// traffic.
	Seed uint64
	// TTL is how long members stay in the topology after their last
	// heartbeat, which bounds how long a crashed member's grains are
	// unreachable (0: natscluster.DefaultTTL). Heartbeats go every TTL/6.
	TTL time.Duration
	// Logger receives the nodes' logs (nil: discard).
	Logger *slog.Logger
	// MeterProvider receives the acceptors', storages' and synod clients'
	// metrics (nil: none).
	MeterProvider metric.MeterProvider
}

// DefaultConfig returns the example's settings for a NATS server at url:
// cluster "example", acceptors a1, a2 and a3, remoting on 127.0.0.1, members
// expired 2s after their last heartbeat.
func DefaultConfig(url string) Config {
	return Config{NATSURL: url, Cluster: "example", Acceptors: []string{"a1", "a2", "a3"}, Host: "127.0.0.1", TTL: 2 * time.Second}
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c Config) validate() error {
	switch {
	case c.NATSURL == "":
		return fmt.Errorf("%w: no NATS URL", ErrInvalidConfig)
	case c.Cluster == "":
		return fmt.Errorf("%w: no cluster name", ErrInvalidConfig)
	case len(c.Acceptors) == 0:
		return fmt.Errorf("%w: no acceptors", ErrInvalidConfig)
	case c.Host == "":
		return fmt.Errorf("%w: no remoting host", ErrInvalidConfig)
	}
	return nil
}

// connectWait bounds how long a node waits for NATS to come up.
const connectWait = 30 * time.Second

// connect opens a NATS connection named name that keeps reconnecting. A
// server that is not up yet (a nats-server started at the same moment) is
// retried for connectWait or until ctx ends.
func (c Config) connect(ctx context.Context, name string) (*nats.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	for {
		opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, c.NATSOptions...)
		nc, err := nats.Connect(c.NATSURL, opts...)
		if err == nil {
			return nc, nil
		}
		if !errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("connect %s to %s: %w", name, c.NATSURL, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect %s to %s: %w (%w)", name, c.NATSURL, err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Acceptor is one running acceptor: its Pebble store, served over NATS.
type Acceptor struct {
	// ID is the acceptor's ID.
	ID    string
	store *pebblestore.Store
	nc    *nats.Conn
	svc   *natstransport.Service
}

// StartAcceptor opens (or creates) the Pebble data directory dir for
// acceptor id and serves it over NATS until Close.
func StartAcceptor(ctx context.Context, cfg Config, id, dir string) (*Acceptor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.logger().With("acceptor", id)
	store, err := pebblestore.Open(dir, pebblestore.WithIdentity(cfg.Cluster, id), pebblestore.WithLogger(log),
		pebblestore.WithMeterProvider(cfg.MeterProvider))
	if err != nil {
		return nil, err
	}
	nc, err := cfg.connect(ctx, "example-acceptor-"+id)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	svc, err := natstransport.Serve(ctx, nc, cfg.Cluster, synod.NewAcceptor(id, store), natstransport.WithLogger(log),
		natstransport.WithMeterProvider(cfg.MeterProvider))
	if err != nil {
		nc.Close()
		_ = store.Close()
		return nil, err
	}
	return &Acceptor{ID: id, store: store, nc: nc, svc: svc}, nil
}

// Close stops serving after answering the requests taken, and closes the
// store.
func (a *Acceptor) Close(ctx context.Context) error {
	err := a.svc.Stop(ctx)
	a.nc.Close()
	return errors.Join(err, a.store.Close())
}

// Node is a protoactor cluster member (hosting the missile and account
// kinds) or a cluster client (hosting nothing), with its own NATS
// connection for membership and for its synod client.
type Node struct {
	// ID names the node in the narration.
	ID string
	// Cluster is the node's protoactor cluster.
	Cluster  *cluster.Cluster
	nc       *nats.Conn
	tr       *natstransport.Transport
	provider *natscluster.Provider
	client   bool
}

// StartMember starts a cluster member that hosts the example's kinds, their
// registers kept by cfg's acceptors. It returns once the member has joined.
func StartMember(ctx context.Context, cfg Config, id string) (*Node, error) {
	return startNode(ctx, cfg, id, false)
}

// StartClient starts a cluster client: it follows the membership and sends
// requests to grains but hosts none.
func StartClient(ctx context.Context, cfg Config, id string) (*Node, error) {
	return startNode(ctx, cfg, id, true)
}

func startNode(ctx context.Context, cfg Config, id string, client bool) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.logger().With("node", id)
	nc, err := cfg.connect(ctx, "example-node-"+id)
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, nc: nc, client: client}
	var kinds []*cluster.Kind
	if !client {
		n.tr, err = natstransport.NewTransport(nc, cfg.Cluster, natstransport.WithLogger(log))
		if err != nil {
			nc.Close()
			return nil, err
		}
		q := len(cfg.Acceptors)/2 + 1
		scfg := synod.Config{Acceptors: cfg.Acceptors, PrepareQuorum: q, AcceptQuorum: q}
		reg, err := synod.NewClient(synod.RandomProposerID(id), scfg, n.tr,
			synod.WithRand(rand.New(rand.NewPCG(cfg.Seed, hash(id)))), synod.WithLogger(log), synod.WithMeterProvider(cfg.MeterProvider),
			// After the acceptors it knows were all replaced, find the new ones.
			synod.WithConfigSource(n.tr.DiscoverConfig))
		if err != nil {
			n.tr.Close()
			nc.Close()
			return nil, err
		}
		missile, err := actors.Props(reg, Missile, actors.WithLogger(log))
		if err != nil {
			return nil, err
		}
		account, err := actors.Props(reg, Account, actors.WithLogger(log))
		if err != nil {
			return nil, err
		}
		kinds = append(kinds, cluster.NewKind(MissileKind, missile), cluster.NewKind(AccountKind, account))
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
	popts := []natscluster.Option{natscluster.WithLogger(log)}
	if cfg.TTL > 0 {
		popts = append(popts, natscluster.WithTTL(cfg.TTL), natscluster.WithHeartbeatInterval(cfg.TTL/6))
	}
	n.provider = natscluster.New(nc, popts...)
	ccfg := cluster.Configure(cfg.Cluster, n.provider, disthash.New(),
		remote.Configure(cfg.Host, 0), cluster.WithKinds(kinds...))
	n.Cluster = cluster.New(sys, ccfg)
	if client {
		n.Cluster.StartClient()
	} else {
		n.Cluster.StartMember()
	}
	return n, nil
}

// hash is FNV-1a, to derive a per-node random stream from the seed.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Address is the node's protoactor remoting address.
func (n *Node) Address() string { return n.Cluster.ActorSystem.Address() }

// Members returns how many members the node sees.
func (n *Node) Members() int { return n.Cluster.MemberList.Length() }

// Crash stops the node abruptly, as a crashed process would: its NATS
// connection closes first (so it announces no leave and its synod rounds
// stop), then its actor system and remoting stop without a graceful leave.
// The others drop it when its heartbeats expire.
func (n *Node) Crash() {
	n.nc.Close()
	n.Cluster.ActorSystem.Shutdown()
	n.Cluster.Remote.Shutdown(false)
	if n.tr != nil {
		_ = n.tr.Close()
	}
}

// Stop leaves the cluster (the others drop the node at once) and closes the
// node's connection. It does not wait for grains to move: their state is in
// the registers, so the next request activates them on another member.
func (n *Node) Stop() {
	_ = n.provider.Shutdown(true)
	n.Cluster.ActorSystem.Shutdown()
	n.Cluster.Remote.Shutdown(false)
	if n.tr != nil {
		_ = n.tr.Close()
	}
	n.nc.Close()
}
