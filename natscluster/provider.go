package natscluster

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/nats-io/nats.go"
)

var _ cluster.ClusterProvider = (*Provider)(nil)

// Provider is a cluster.ClusterProvider that keeps protoactor-go cluster
// membership over NATS core. Create one per cluster.Cluster with [New] and
// pass it to cluster.Configure. Its methods are safe for concurrent use.
type Provider struct {
	nc   *nats.Conn
	opts options
	id   atomic.Pointer[string] // the member ID announced now

	mu    sync.Mutex
	state providerState
	stop  chan struct{} // closed by Shutdown
	done  chan struct{} // closed when the run loop has torn down
	err   error         // teardown result, valid once done is closed
}

type providerState int

const (
	stateNew providerState = iota
	stateRunning
	stateClosed
)

// New returns a provider that talks over nc. The provider never closes nc;
// the caller closes it after Shutdown. Invalid options are reported by
// StartMember and StartClient, wrapped in [ErrInvalidConfig].
func New(nc *nats.Conn, opts ...Option) *Provider {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return &Provider{nc: nc, opts: o}
}

// StartMember joins the cluster as a member: it announces the member's ID,
// address and kinds, asks the others to announce themselves, and starts
// heartbeating. It returns once the first topology, collected during the
// join window, has been handed to c.MemberList. protoactor-go calls it from
// cluster.StartMember, after remoting has started.
func (p *Provider) StartMember(c *cluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("natscluster: member address: %w", err)
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("%w: member port %d: is remoting started?", ErrInvalidConfig, port)
	}
	return p.start(runConfig{
		clusterName: c.Config.Name,
		id:          c.ActorSystem.ID,
		self:        p.announcement(c.ActorSystem.ID, memberID(c.ActorSystem.ID, 1), host, int32(port), c.GetClusterKinds()),
		publish:     c.MemberList.UpdateClusterTopology,
		republish: func(ms cluster.Members) {
			c.ActorSystem.EventStream.Publish(&cluster.ClusterTopology{TopologyHash: cluster.TopologyHash(ms), Members: ms})
		},
		stopped: c.ActorSystem.IsStopped,
	})
}

// MemberID returns the member ID under which the member appears in the
// cluster topology now, "<actor system ID>.<incarnation>", or "" for a
// client or a provider that has not started. It changes when the member
// fences itself (see "Rejoining" in the package doc).
func (p *Provider) MemberID() string {
	if id := p.id.Load(); id != nil {
		return *id
	}
	return ""
}

// memberID returns the member ID of an actor system's incarnation n.
// protoactor-go never admits a member ID again once it left a topology, so
// a member that comes back after being expired needs a new one.
func memberID(instance string, n int) string {
	return instance + "." + strconv.Itoa(n)
}

// StartClient follows the cluster's membership without joining it: the
// client sends no heartbeats and is not part of any topology. It returns
// once the first topology has been handed to c.MemberList.
func (p *Provider) StartClient(c *cluster.Cluster) error {
	return p.start(runConfig{
		clusterName: c.Config.Name,
		id:          c.ActorSystem.ID,
		publish:     c.MemberList.UpdateClusterTopology,
		stopped:     c.ActorSystem.IsStopped,
	})
}

// Shutdown stops heartbeating and unsubscribes. A member also publishes a
// leave message, so the others drop it at once instead of after the TTL,
// and flushes it for at most one TTL. The leave is sent whether or not
// graceful is set: the member is going away either way. Shutdown waits for
// the provider's goroutine to exit, is idempotent, and does not close the
// NATS connection. It returns the error of publishing the leave, if any.
//
// cluster.Cluster.Shutdown(false) does not call Shutdown. The provider then
// notices the stopped actor system at its next heartbeat tick and leaves on
// its own.
func (p *Provider) Shutdown(graceful bool) error {
	p.mu.Lock()
	prev := p.state
	p.state = stateClosed
	if prev == stateRunning {
		close(p.stop)
	}
	done := p.done
	p.mu.Unlock()

	if done == nil {
		return nil
	}
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// announcement returns the heartbeat a member with these details sends.
func (p *Provider) announcement(instance, id, host string, port int32, kinds []string) *heartbeat {
	kinds = slices.Clone(kinds)
	slices.Sort(kinds)
	return &heartbeat{
		Version:   wireVersion,
		ID:        id,
		Instance:  instance,
		Host:      host,
		Port:      port,
		Kinds:     kinds,
		TTLMillis: max(p.opts.ttl.Milliseconds(), 1),
	}
}

// runConfig is what the run loop needs from protoactor-go. Tests fill it
// without an actor system.
type runConfig struct {
	clusterName string
	id          string                // actor system ID, to ignore our own hello
	self        *heartbeat            // nil for a cluster client
	publish     func(cluster.Members) // receives every changed topology
	// republish announces an unchanged topology again on the actor
	// system's event stream, which MemberList does only for a changed one;
	// may be nil.
	republish func(cluster.Members)
	stopped   func() bool     // reports a shut-down actor system; may be nil
	announce  func(id string) // learns the member ID announced from now on; may be nil
}

func (p *Provider) start(rc runConfig) error {
	if p.nc == nil {
		return fmt.Errorf("%w: nil NATS connection", ErrInvalidConfig)
	}
	if err := p.opts.validate(); err != nil {
		return err
	}
	if err := validSubjectPart(rc.clusterName); err != nil {
		return fmt.Errorf("%w: cluster name: %w", ErrInvalidConfig, err)
	}

	p.mu.Lock()
	switch p.state {
	case stateRunning:
		p.mu.Unlock()
		return ErrStarted
	case stateClosed:
		p.mu.Unlock()
		return ErrClosed
	}
	if rc.self != nil {
		id := rc.self.ID
		p.id.Store(&id)
	}
	next := rc.announce
	rc.announce = func(id string) {
		p.id.Store(&id)
		if next != nil {
			next(id)
		}
	}
	r := newRunner(p.nc, p.opts, rc)
	if err := r.subscribe(); err != nil {
		p.mu.Unlock()
		return err
	}
	p.state = stateRunning
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	ready := make(chan struct{})
	go p.run(r, p.stop, p.done, ready)
	done := p.done
	p.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-done:
		return ErrClosed
	}
}

// run drives r until stop is closed or the actor system has stopped, then
// tears it down and records the result.
func (p *Provider) run(r *runner, stop <-chan struct{}, done chan<- struct{}, ready chan<- struct{}) {
	r.loop(stop, ready)
	err := r.teardown()
	p.mu.Lock()
	p.err = err
	p.state = stateClosed
	p.mu.Unlock()
	close(done)
}
