package natstransport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// ledger records, per key, how many changes were acknowledged and how many
// ended indeterminate, so that a final read can be checked.
type ledger struct {
	mu    sync.Mutex
	acked map[string]int
	indet map[string]int
}

func newLedger() *ledger { return &ledger{acked: map[string]int{}, indet: map[string]int{}} }

// record counts the outcome of one increment of key and fails the test on any
// error but the allowed ones.
func (l *ledger) record(t testing.TB, key string, err error, allowed ...error) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.acked[key]++
	case errors.Is(err, synod.ErrIndeterminate):
		l.indet[key]++
	default:
		for _, a := range allowed {
			if errors.Is(err, a) {
				return
			}
		}
		t.Errorf("change %s: %v", key, err)
	}
}

// check reads every key through c and compares it with the ledger: every
// acknowledged increment is there, and at most the indeterminate ones more.
func (l *ledger) check(t testing.TB, c *synod.Client) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, acked := range l.acked {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := c.Read(ctx, key)
		cancel()
		if err != nil {
			t.Errorf("read %s: %v", key, err)
			continue
		}
		if got := counter(t, v); got < acked || got > acked+l.indet[key] {
			t.Errorf("key %s: counter %d, want %d acknowledged (+ up to %d indeterminate)", key, got, acked, l.indet[key])
		}
	}
}

// change runs one increment with a deadline and checks that it returns by
// the deadline (plus scheduling slack), whatever the outcome.
func change(t testing.TB, c *synod.Client, key string, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := c.Change(ctx, key, increment)
	if took := time.Since(start); took > d+time.Second {
		t.Errorf("change %s took %v with a %v deadline", key, took, d)
	}
	return err
}

func TestEndToEndConcurrentChanges(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 3, pebbleStorage)
	seed := testSeed(t)
	l := newLedger()
	const (
		clients = 4
		workers = 4
		changes = 20
		keys    = 12
	)
	var wg sync.WaitGroup
	for ci := range clients {
		c, _ := h.client(fmt.Sprintf("p%d", ci), seed+uint64(ci))
		for w := range workers {
			rng := rand.New(rand.NewPCG(seed, uint64(ci*workers+w)))
			wg.Go(func() {
				for range changes {
					key := fmt.Sprintf("k%d", rng.IntN(keys))
					l.record(t, key, change(t, c, key, 10*time.Second))
				}
			})
		}
	}
	wg.Wait()
	reader, _ := h.client("reader", seed+100)
	l.check(t, reader)
	total := 0
	for _, n := range l.acked {
		total += n
	}
	t.Logf("%d changes acknowledged on %d keys", total, len(l.acked))
}

// TestEndToEndAcceptorFailures stops acceptors one by one and restarts them on
// their Pebble directories.
func TestEndToEndAcceptorFailures(t *testing.T) {
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 3, pebbleStorage)
	seed := testSeed(t)
	c, _ := h.client("p", seed, synod.WithPhaseTimeout(200*time.Millisecond))
	l := newLedger()
	keys := []string{"k0", "k1", "k2", "k3"}
	round := func(d time.Duration, allowed ...error) {
		for _, k := range keys {
			l.record(t, k, change(t, c, k, d), allowed...)
		}
	}
	round(5 * time.Second)

	h.stop(2)
	for range 3 {
		round(5 * time.Second) // a majority is still there
	}

	h.stop(1)
	var unavailable, indeterminate int
	for _, k := range keys {
		err := change(t, c, k, time.Second)
		switch {
		case errors.Is(err, synod.ErrUnavailable):
			unavailable++
		case errors.Is(err, synod.ErrIndeterminate):
			indeterminate++
		default:
			t.Errorf("change %s without a quorum: got %v, want ErrUnavailable or ErrIndeterminate", k, err)
		}
		l.record(t, k, err, synod.ErrUnavailable)
	}
	t.Logf("without a quorum: %d unavailable, %d indeterminate", unavailable, indeterminate)

	h.start(1)
	h.start(2)
	round(5 * time.Second)

	// Restart everything on the same directories; a new proposer must find
	// every acknowledged increment.
	for i := range 3 {
		h.stop(i)
	}
	for i := range 3 {
		h.start(i)
	}
	reader, _ := h.client("reader", seed+1)
	l.check(t, reader)
}

// restartableServer is a NATS server that can be shut down and started again
// on the same port, for reconnection tests.
type restartableServer struct {
	t    testing.TB
	mu   sync.Mutex
	s    *server.Server
	port int
}

func runRestartableServer(t testing.TB) *restartableServer {
	r := &restartableServer{t: t, port: -1}
	r.start()
	t.Cleanup(r.shutdown)
	return r
}

func (r *restartableServer) start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	// The port was free a moment ago; retry briefly in case the old listener
	// lingers.
	for range 50 {
		var s *server.Server
		s, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: r.port, NoLog: true, NoSigs: true})
		if err != nil {
			break
		}
		go s.Start()
		if s.ReadyForConnections(5 * time.Second) {
			r.s = s
			r.port = s.Addr().(*net.TCPAddr).Port
			return
		}
		s.Shutdown()
		s.WaitForShutdown()
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("nats server on port %d did not start: %v", r.port, err)
}

func (r *restartableServer) shutdown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.s != nil {
		r.s.Shutdown()
		r.s.WaitForShutdown()
		r.s = nil
	}
}

func (r *restartableServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", r.port) }

// connect dials the server, reconnecting every 20ms forever unless opts say
// otherwise, and closes the connection when t ends.
func (r *restartableServer) connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(r.url(), all...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestEndToEndNATSRestart restarts the NATS server under running acceptors and
// clients: changes fail within their deadline while it is down and work again
// after the connections reconnect, with nothing restarted.
func TestEndToEndNATSRestart(t *testing.T) {
	srv := runRestartableServer(t)
	var (
		mu    sync.Mutex
		conns []*nats.Conn
	)
	connect := func(t testing.TB) *nats.Conn {
		nc := srv.connect(t)
		mu.Lock()
		conns = append(conns, nc)
		mu.Unlock()
		return nc
	}
	h := newHarness(t, connect, 3, memoryStorage)
	seed := testSeed(t)
	c, _ := h.client("p", seed, synod.WithPhaseTimeout(200*time.Millisecond))
	l := newLedger()
	keys := []string{"k0", "k1", "k2"}
	for _, k := range keys {
		l.record(t, k, change(t, c, k, 5*time.Second))
	}

	srv.shutdown()
	for _, k := range keys {
		err := change(t, c, k, 500*time.Millisecond)
		if !errors.Is(err, synod.ErrUnavailable) && !errors.Is(err, synod.ErrIndeterminate) {
			t.Errorf("change %s with NATS down: got %v, want ErrUnavailable or ErrIndeterminate", k, err)
		}
		l.record(t, k, err, synod.ErrUnavailable)
	}

	srv.start()
	waitFor(t, "every connection to reconnect", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range conns {
			if !nc.IsConnected() {
				return false
			}
		}
		return true
	})
	for range 3 {
		for _, k := range keys {
			l.record(t, k, change(t, c, k, 10*time.Second))
		}
	}
	l.check(t, c)
}

// TestTransportConnectionLost checks that when the proposer's connection
// drops, the frames in flight end at once with replies matching
// synod.ErrReplyLost, instead of holding their acceptors' pipelines until
// their requests' contexts end, and that requests flow again after the
// reconnect.
func TestTransportConnectionLost(t *testing.T) {
	srv := runRestartableServer(t)
	frames := muteAcceptor(t, srv.connect(t))
	nc := srv.connect(t)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	tr := newTransport(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	replies := make(chan synod.PrepareReply, 1)
	if err := tr.Prepare(ctx, []string{"mute"}, synod.PrepareRequest{Key: "k", Ballot: b1}, replies); err != nil {
		t.Fatal(err)
	}
	awaitFrame(t, frames)

	srv.shutdown()
	select {
	case r := <-replies:
		if !errors.Is(r.Err, synod.ErrReplyLost) || r.From != "mute" || r.Key != "k" || r.Ballot != b1 {
			t.Fatalf("reply after the connection dropped: %+v, want one from mute for k at %v matching synod.ErrReplyLost", r, b1)
		}
		t.Logf("reply: %v", r.Err)
	case <-time.After(10 * time.Second):
		t.Fatal("no reply within 10s of the connection dropping (the request's context has a minute left)")
	}
	waitFor(t, "the lost request to leave", func() bool { return tr.Pending() == 0 })

	// The acceptor's pipeline is free: the next request goes out once the
	// connections are back, while the lost one's context still runs.
	srv.start()
	waitFor(t, "the proposer to reconnect", nc.IsConnected)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("no frame reached the acceptor within 10s of the reconnect")
		}
		if err := tr.Prepare(ctx, []string{"mute"}, synod.PrepareRequest{Key: "k", Ballot: b1}, make(chan synod.PrepareReply, 1)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-frames:
			return
		case <-time.After(100 * time.Millisecond):
			// The silent acceptor's subscription may not be back yet:
			// its frame got "no responders". Send another.
		}
	}
}

// TestTransportFrameNotSentIsAnswered checks that a frame whose publish
// fails, sent from the background when an earlier frame to its acceptor
// ended, answers its requests (ErrReplyLost) instead of leaving them without
// a reply: here the connection has no reconnect buffer, so once the server is
// gone the queued frame cannot be published. Before, the request's phase
// waited for its timeout.
func TestTransportFrameNotSentIsAnswered(t *testing.T) {
	srv := runRestartableServer(t)
	frames := muteAcceptor(t, srv.connect(t))
	nc := srv.connect(t, nats.ReconnectWait(time.Hour), nats.ReconnectBufSize(-1))
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	tr := newTransport(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := make(chan synod.PrepareReply, 1)
	if err := tr.Prepare(ctx, []string{"mute"}, synod.PrepareRequest{Key: "a", Ballot: b1}, first); err != nil {
		t.Fatal(err)
	}
	awaitFrame(t, frames)
	// Queued behind the first frame, which stays in flight.
	second := make(chan synod.PrepareReply, 1)
	if err := tr.Prepare(ctx, []string{"mute"}, synod.PrepareRequest{Key: "b", Ballot: b1}, second); err != nil {
		t.Fatal(err)
	}
	srv.shutdown()
	for _, ch := range []chan synod.PrepareReply{first, second} {
		select {
		case r := <-ch:
			if !errors.Is(r.Err, synod.ErrReplyLost) || r.From != "mute" {
				t.Fatalf("reply %+v, want one from mute matching synod.ErrReplyLost", r)
			}
			t.Logf("%s: %v", r.Key, r.Err)
		case <-time.After(10 * time.Second):
			t.Fatal("a request got no reply within 10s of the connection dropping (its context has a minute left)")
		}
	}
	waitFor(t, "the requests to leave", func() bool { return tr.Pending() == 0 })
}

// muteAcceptor serves acceptor "mute" of testCluster over nc: it takes
// frames and never answers. The channel gets a value per frame other than
// the Transport's pings.
func muteAcceptor(t *testing.T, nc *nats.Conn) <-chan struct{} {
	t.Helper()
	frames := make(chan struct{}, 16)
	if _, err := nc.Subscribe("synod."+testCluster+".mute.frame", func(m *nats.Msg) {
		if !isPing(m) {
			frames <- struct{}{}
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The server must have the subscription before the first frame, which
	// would otherwise get "no responders" and never arrive.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return frames
}

// awaitFrame waits up to 10s for a frame to reach a muteAcceptor.
func awaitFrame(t *testing.T, frames <-chan struct{}) {
	t.Helper()
	select {
	case <-frames:
	case <-time.After(10 * time.Second):
		t.Fatal("the frame never reached the acceptor")
	}
}
