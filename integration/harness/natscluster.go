package harness

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/procs"
)

// pollInterval is how often the harness polls a condition that has no event
// to wait on (monitoring endpoints, message arrival).
const pollInterval = 20 * time.Millisecond

// NATSOption configures [StartNATSCluster].
type NATSOption = procs.NATSOption

// WithNATSServerBinary sets the nats-server binary to run, normally from
// [Binaries.NATSServer] or [Suite.NATSServer]. Without it StartNATSCluster
// builds one into the test's temporary directory, which costs a link step per
// test.
func WithNATSServerBinary(path string) NATSOption { return procs.WithNATSServerBinary(path) }

// WithClusterName sets the cluster's name (default "protosynod").
func WithClusterName(name string) NATSOption { return procs.WithClusterName(name) }

// WithServerConfig appends a block of nats-server configuration to every
// server's config file, after the harness's own settings (which it may
// override). Use it for accounts, authorization and tls blocks, e.g.
//
//	authorization { users = [ { user: acceptor, password: s3cret,
//	    permissions: { subscribe: "synod.>", publish: "_INBOX.>" } } ] }
//
// It can be given more than once. Clients of a secured cluster need matching
// [WithClientOptions].
func WithServerConfig(block string) NATSOption { return procs.WithServerConfig(block) }

// WithClientOptions sets nats.go options (credentials, TLS) used by the
// readiness probe and added to every [NATSCluster.Connect].
func WithClientOptions(opts ...nats.Option) NATSOption { return procs.WithClientOptions(opts...) }

// WithReadyTimeout bounds how long StartNATSCluster waits for the cluster to
// form (default 30s).
func WithReadyTimeout(d time.Duration) NATSOption { return procs.WithReadyTimeout(d) }

// WithoutProbe skips the publish/subscribe probe across servers, for
// configurations in which the probe's client may not publish or subscribe.
// Readiness then rests on /healthz and /routez only.
func WithoutProbe() NATSOption { return procs.WithoutProbe() }

// NATSCluster is a cluster of nats-server processes with routes between all
// of them, all on loopback ports (see [procs.NATSCluster]). Servers are
// numbered from 0.
type NATSCluster struct {
	*procs.NATSCluster
}

// StartNATSCluster starts n nats-server processes as one cluster (see
// [procs.StartNATSCluster]) and returns once routes carry messages between
// them. It fails the test on error; the servers are killed in t.Cleanup.
func StartNATSCluster(t testing.TB, n int, opts ...NATSOption) *NATSCluster {
	t.Helper()
	c, err := procs.StartNATSCluster(t.Context(), t, n, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &NATSCluster{c}
}

// clientDefaults are the nats.go options every Connect starts from.
func clientDefaults() []nats.Option { return procs.ClientDefaults() }

// Connect connects to the cluster with every server's URL, reconnecting
// forever with a short wait, plus the cluster's [WithClientOptions] and opts
// (later options win). It fails the test if no server accepts the connection,
// and closes the connection in t.Cleanup.
func (c *NATSCluster) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := c.NATSCluster.Connect(opts...)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ConnectTo connects to server i only: it ignores the servers the cluster
// advertises, so it reconnects to server i alone. Otherwise it behaves like
// [NATSCluster.Connect].
func (c *NATSCluster) ConnectTo(t testing.TB, i int, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := c.NATSCluster.ConnectTo(i, opts...)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
