package natscluster

import (
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/internal/natstest"
)

// These tests drive the provider without an actor system: a recorder stands
// in for cluster.MemberList.

const testCluster = "test"

// fake is a provider started with a recorder instead of a protoactor
// cluster.
type fake struct {
	p       *Provider
	rec     *recorder
	stopped atomic.Bool // what the provider sees as ActorSystem.IsStopped
}

var nextPort atomic.Int32

// startFake starts a member (or, with client, a client) named id on nc.
func startFake(t *testing.T, nc *nats.Conn, id string, client bool, opts ...Option) *fake {
	t.Helper()
	f := &fake{p: New(nc, opts...), rec: newRecorder()}
	rc := runConfig{clusterName: testCluster, id: id, publish: f.rec.record, stopped: f.stopped.Load}
	if !client {
		rc.self = f.p.announcement(id, id, "127.0.0.1", 10000+nextPort.Add(1), []string{"kind"})
	}
	if err := f.p.start(rc); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() { _ = f.p.Shutdown(false) })
	return f
}

// slowBeats makes heartbeats too rare to matter, so only hello, leave and
// TTL can explain what a test sees.
var slowBeats = []Option{WithHeartbeatInterval(time.Minute), WithTTL(time.Hour)}

func TestStartReturnsFullTopology(t *testing.T) {
	s := natstest.RunServer(t)
	a := startFake(t, natstest.Connect(t, s), "a", false, slowBeats...)
	if got := a.rec.snapshot(); fmt.Sprint(got) != "[a]" {
		t.Fatalf("a after start: got %v, want [a]", got)
	}
	// A long join window leaves room for a loaded machine.
	joining := append([]Option{WithJoinWindow(2 * time.Second)}, slowBeats...)
	b := startFake(t, natstest.Connect(t, s), "b", false, joining...)
	// b's hello made a heartbeat at once, within b's join window.
	if got := b.rec.snapshot(); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("b after start: got %v, want [a b]", got)
	}
	a.rec.waitFor(t, 5*time.Second, "a", "b")

	// A client's hello is answered too; with heartbeats a minute apart
	// nothing else can tell it about a and b.
	c := startFake(t, natstest.Connect(t, s), "c", true, slowBeats...)
	c.rec.waitFor(t, 5*time.Second, "a", "b")
}

func TestLeaveDropsMemberAtOnce(t *testing.T) {
	s := natstest.RunServer(t)
	a := startFake(t, natstest.Connect(t, s), "a", false, slowBeats...)
	ncB := natstest.Connect(t, s)
	base := ncB.NumSubscriptions()
	b := startFake(t, ncB, "b", false, slowBeats...)
	a.rec.waitFor(t, 5*time.Second, "a", "b")
	if got, want := ncB.NumSubscriptions(), base+1; got != want {
		t.Fatalf("subscriptions while running: got %d, want %d", got, want)
	}

	if err := b.p.Shutdown(true); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	took := a.rec.waitFor(t, 5*time.Second, "a")
	t.Logf("leave seen after %v", took)
	if got := ncB.NumSubscriptions(); got != base {
		t.Fatalf("subscriptions after shutdown: got %d, want %d", got, base)
	}
	if ncB.IsClosed() {
		t.Fatal("provider closed the caller's connection")
	}
	if err := b.p.Shutdown(true); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if err := a.p.Shutdown(false); err != nil {
		t.Fatalf("shutdown a: %v", err)
	}
	waitNoRunLoops(t)
}

func TestCrashedMemberExpires(t *testing.T) {
	const ttl = 300 * time.Millisecond
	opts := []Option{WithHeartbeatInterval(50 * time.Millisecond), WithTTL(ttl)}
	s := natstest.RunServer(t)
	a := startFake(t, natstest.Connect(t, s), "a", false, opts...)
	ncB := natstest.Connect(t, s)
	b := startFake(t, ncB, "b", false, opts...)
	a.rec.waitFor(t, 5*time.Second, "a", "b")
	b.rec.waitFor(t, 5*time.Second, "a", "b")

	ncB.Close() // b can neither heartbeat nor say goodbye
	// Usually one TTL; a loaded machine postpones expiry (see checkStall).
	took := a.rec.waitFor(t, ttl+10*time.Second, "a")
	t.Logf("crash detected after %v (TTL %v)", took, ttl)
	// b cannot hear its own heartbeats either: it fences itself, a
	// topology without itself in which no one hosts a kind, and expires
	// no one.
	b.rec.waitFor(t, ttl+10*time.Second, "a")
	if ms := b.rec.lastMembers(); len(ms) != 1 || len(ms[0].Kinds) != 0 {
		t.Fatalf("b fenced: got %v, want a without kinds", ms)
	}
	if got := b.p.MemberID(); got != "b.2" {
		t.Fatalf("b's next member ID: got %q, want b.2", got)
	}

	if err := b.p.Shutdown(false); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("shutdown on closed connection: got %v, want ErrConnectionClosed", err)
	}
}

func TestStoppedActorSystemLeaves(t *testing.T) {
	opts := []Option{WithHeartbeatInterval(20 * time.Millisecond), WithTTL(time.Hour)}
	s := natstest.RunServer(t)
	a := startFake(t, natstest.Connect(t, s), "a", false, opts...)
	b := startFake(t, natstest.Connect(t, s), "b", false, opts...)
	a.rec.waitFor(t, 5*time.Second, "a", "b")

	b.stopped.Store(true)
	a.rec.waitFor(t, 5*time.Second, "a")
	select {
	case <-b.p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("provider still running after its actor system stopped")
	}
	if err := b.p.Shutdown(true); err != nil {
		t.Fatalf("shutdown after self-stop: %v", err)
	}
}

func TestAnnouncedTTLAndRawMessages(t *testing.T) {
	s := natstest.RunServer(t)
	a := startFake(t, natstest.Connect(t, s), "a", false, slowBeats...)
	raw := natstest.Connect(t, s)
	subj := newSubjects(DefaultSubjectPrefix, testCluster)

	beats := make(chan *nats.Msg, 16)
	if _, err := raw.ChanSubscribe(subj.heartbeat, beats); err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	publish := func(subject, data string) {
		t.Helper()
		if err := raw.Publish(subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}

	// Junk is dropped; the hello after it is still answered.
	publish(subj.heartbeat, `{"v":1,"id":"junk"`)
	publish(subj.leave, `nope`)
	publish(subj.hello, `{"v":9,"id":"x"}`)
	publish(subj.hello, `{"v":1,"id":"stranger"}`)
	deadline := time.After(5 * time.Second)
	for answered := false; !answered; {
		select {
		case m := <-beats: // our own junk arrives here too
			h, err := decodeHeartbeat(m.Data)
			answered = err == nil && h.ID == "a"
		case <-deadline:
			t.Fatal("hello not answered")
		}
	}

	// A ghost announcing a 200ms TTL expires by its TTL, not a's hour.
	publish(subj.heartbeat, `{"v":1,"id":"ghost","host":"127.0.0.1","port":9,"ttl_ms":200}`)
	a.rec.waitFor(t, 5*time.Second, "a", "ghost")
	took := a.rec.waitFor(t, 5*time.Second, "a")
	t.Logf("ghost expired after %v", took)
}

func TestStartErrors(t *testing.T) {
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	rc := func() runConfig {
		return runConfig{clusterName: testCluster, id: "x", publish: newRecorder().record}
	}
	tests := []struct {
		name string
		p    *Provider
		rc   runConfig
		want error
	}{
		{"nil connection", New(nil), rc(), ErrInvalidConfig},
		{"bad option", New(nc, WithTTL(0)), rc(), ErrInvalidConfig},
		{"bad cluster name", New(nc), runConfig{clusterName: "a.>", id: "x"}, ErrInvalidConfig},
		{"empty cluster name", New(nc), runConfig{id: "x"}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.start(tt.rc); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("twice", func(t *testing.T) {
		p := New(nc, WithJoinWindow(0))
		if err := p.start(rc()); err != nil {
			t.Fatal(err)
		}
		defer p.Shutdown(false)
		if err := p.start(rc()); !errors.Is(err, ErrStarted) {
			t.Fatalf("got %v, want ErrStarted", err)
		}
	})
	t.Run("after shutdown", func(t *testing.T) {
		p := New(nc, WithJoinWindow(0))
		if err := p.Shutdown(false); err != nil {
			t.Fatalf("shutdown before start: %v", err)
		}
		if err := p.start(rc()); !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
	})
	t.Run("closed connection", func(t *testing.T) {
		closed := natstest.Connect(t, s)
		closed.Close()
		if err := New(closed).start(rc()); !errors.Is(err, nats.ErrConnectionClosed) {
			t.Fatalf("got %v, want ErrConnectionClosed", err)
		}
	})
	waitNoRunLoops(t)
}

func TestStallPostponesExpiry(t *testing.T) {
	o := defaultOptions()
	o.interval, o.ttl = 100*time.Millisecond, time.Second
	r := newRunner(nil, o, runConfig{clusterName: testCluster, id: "self"})
	r.table.heartbeat(hb("a", 1, 0), t0)

	tests := []struct {
		name string
		gap  time.Duration
		want time.Time // a's deadline afterwards
	}{
		{"on time", 100 * time.Millisecond, t0.Add(time.Second)},
		{"late but not stalled", 350 * time.Millisecond, t0.Add(time.Second)},
		{"stalled", 5 * time.Second, t0.Add(time.Second + 4900*time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.checkStall(tt.gap)
			if got, _ := r.table.nextDeadline(); !got.Equal(tt.want) {
				t.Fatalf("deadline: got %v, want %v", got.Sub(t0), tt.want.Sub(t0))
			}
		})
	}
}

func TestFenceWhenOwnHeartbeatsStop(t *testing.T) {
	o := defaultOptions()
	o.interval, o.ttl = 100*time.Millisecond, 2*time.Second
	p := New(nil)
	self := p.announcement("s", "s.1", "127.0.0.1", 1, []string{"k"})
	r := newRunner(nil, o, runConfig{clusterName: testCluster, id: "s", self: self})
	r.echo = true // as on a real connection without NoEcho
	r.confirmed, r.echoAt = t0, t0
	r.sent[1%sentRing] = sentBeat{seq: 1, at: t0}
	other := hb("a.1", 2, 300*time.Millisecond, "k")
	other.Instance = "a"
	r.table.heartbeat(other, t0)
	if got, want := r.fenceAfter(), 1500*time.Millisecond; got != want {
		t.Fatalf("fenceAfter: got %v, want %v", got, want)
	}

	// a's TTL passes while s hears its own heartbeats: a expires.
	own := *self
	own.Seq = 1
	r.ownHeartbeat(own, t0.Add(100*time.Millisecond))
	if !r.check(t0.Add(300 * time.Millisecond)) {
		t.Fatal("a not expired while s hears itself")
	}

	// a comes back; then s stops hearing itself. a's silence proves
	// nothing while s is deaf, and s fences itself in time.
	r.table.heartbeat(other, t0.Add(400*time.Millisecond))
	if r.check(t0.Add(900*time.Millisecond)) || len(r.table.live) != 1 {
		t.Fatal("a expired while s could not hear")
	}
	if r.fenced {
		t.Fatal("fenced before fenceAfter")
	}
	if !r.check(t0.Add(1600*time.Millisecond)) || !r.fenced {
		t.Fatal("not fenced after fenceAfter without an own heartbeat back")
	}
	if got := r.self.ID; got != "s.2" {
		t.Fatalf("next member ID: got %q, want s.2", got)
	}
	if ms := r.table.fenced(); len(ms) != 1 || ms[0].Id != "a.1" || len(ms[0].Kinds) != 0 {
		t.Fatalf("fenced topology: got %v, want a.1 without kinds", ms)
	}
	if r.check(t0.Add(time.Hour)) || len(r.table.live) != 1 {
		t.Fatal("a fenced member expired someone")
	}
	if _, ok := r.nextCheck(t0.Add(time.Hour)); ok {
		t.Fatal("a fenced member has a check to wait for")
	}
}

// TestRejoinAfterNATSPartition splits a two-server NATS cluster (its route
// goes through a toxiproxy proxy) with a member on each side. Each hears its
// own heartbeats, so neither fences: they expire each other, and
// protoactor-go would block both IDs for good. After the heal each tells the
// other it was expired, and both come back under new IDs.
func TestRejoinAfterNATSPartition(t *testing.T) {
	s1 := natstest.RunServer(t, func(o *server.Options) {
		// No advertising, one route: s2 can reach s1 only through the proxy.
		o.ServerName, o.Cluster = "s1", server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: -1, NoAdvertise: true, PoolSize: -1}
	})
	px := harness.NewProxy(t, s1.ClusterAddr().String())
	route, err := url.Parse("nats-route://" + px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	s2 := natstest.RunServer(t, func(o *server.Options) {
		o.ServerName, o.Cluster = "s2", server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: -1, NoAdvertise: true, PoolSize: -1}
		o.Routes = []*url.URL{route}
	})
	waitRoute := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s1.NumRoutes() == 0 || s2.NumRoutes() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("routes: s1 %d, s2 %d, want them connected", s1.NumRoutes(), s2.NumRoutes())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRoute()

	const ttl = 500 * time.Millisecond
	opts := []Option{WithHeartbeatInterval(50 * time.Millisecond), WithTTL(ttl)}
	a := startFake(t, natstest.Connect(t, s1), "a", false, opts...)
	b := startFake(t, natstest.Connect(t, s2), "b", false, opts...)
	a.rec.waitFor(t, 10*time.Second, "a", "b")
	b.rec.waitFor(t, 10*time.Second, "a", "b")

	if err := px.Disable(); err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, 10*time.Second, "a")
	b.rec.waitFor(t, 10*time.Second, "b")
	if err := px.Heal(); err != nil {
		t.Fatal(err)
	}
	waitRoute()
	a.rec.waitFor(t, 15*time.Second, "a.2", "b.2")
	b.rec.waitFor(t, 15*time.Second, "a.2", "b.2")
}
