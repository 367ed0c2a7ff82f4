package natstransport

import (
	"bytes"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

func TestNearTiers(t *testing.T) {
	us, ms := time.Microsecond, time.Millisecond
	type tiers = [][]string
	for _, tt := range []struct {
		name  string
		est   map[string]time.Duration
		known int
		want  tiers
	}{
		{"nothing measured", nil, 3, nil},
		// A route hop to another server in one data center does not count.
		{"one data center", map[string]time.Duration{"a0": 100 * us, "a1": 300 * us, "a2": 650 * us}, 3, nil},
		{"one acceptor in another zone", map[string]time.Duration{"a0": 150 * us, "a1": 350 * us, "a2": 10 * ms}, 3,
			tiers{{"a0", "a1"}, {"a2"}}},
		// Three zones, one nearer than the other: the subset must not be
		// filled from the far one.
		{"a near and a far zone", map[string]time.Duration{"a0": 200 * us, "a1": 2 * ms, "a2": 30 * ms}, 3,
			tiers{{"a0"}, {"a1"}, {"a2"}}},
		{"two in another zone", map[string]time.Duration{"a0": 300 * us, "a1": 5 * ms, "a2": 6 * ms}, 3,
			tiers{{"a0"}, {"a1", "a2"}}},
		// Far from every acceptor: twice the nearest still counts.
		{"another region", map[string]time.Duration{"a0": 20 * ms, "a1": 25 * ms, "a2": 80 * ms}, 3,
			tiers{{"a0", "a1"}, {"a2"}}},
		{"five over zones", map[string]time.Duration{"a0": 200 * us, "a1": 1100 * us, "a2": 2 * ms, "a3": 2 * ms, "a4": 9 * ms},
			5, tiers{{"a0", "a1"}, {"a2", "a3"}, {"a4"}}},
		// An acceptor that did not answer is in no tier, so the others
		// are not all of them.
		{"one unreachable", map[string]time.Duration{"a0": 100 * us, "a1": 110 * us}, 3, tiers{{"a0", "a1"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := nearTiers(tt.est, tt.known)
			if !slices.EqualFunc(got, tt.want, slices.Equal[[]string]) {
				t.Errorf("nearTiers(%v, %d) = %v, want %v", tt.est, tt.known, got, tt.want)
			}
		})
	}
}

// An acceptor answers an empty frame (a Transport measuring its distance)
// at once, even while its only frame worker waits for the storage.
func TestServiceAnswersEmptyFrameAtOnce(t *testing.T) {
	s := natstest.RunServer(t)
	store := newBlockingStorage(func(string) bool { return true })
	serveOne(t, natstest.Connect(t, s), "a1", store, WithWorkers(1))
	tr := newTransport(t, natstest.Connect(t, s))
	ch := make(chan synod.AcceptReply, 1)
	if err := tr.Accept(ctxTimeout(t, 10*time.Second), []string{"a1"}, synod.AcceptRequest{Key: "k", Ballot: b1}, ch); err != nil {
		t.Fatal(err)
	}
	<-store.entered // the only frame worker is busy
	defer close(store.release)

	frame, err := FrameSubject(DefaultPrefix, testCluster, "a1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := natstest.Connect(t, s).RequestWithContext(ctxTimeout(t, 5*time.Second), frame, emptyFrame)
	if err != nil {
		t.Fatalf("empty frame while the worker is busy: %v", err)
	}
	f, err := DecodeReplyFrame(m.Data, DefaultLimits())
	if err != nil || f.From != "a1" || len(f.Items) != 0 {
		t.Fatalf("reply to an empty frame: %+v, %v; want an empty frame from a1", f, err)
	}
}

// isPing reports whether m is a Transport's ping: a request frame with no
// items. Stand-in acceptors that capture frames skip them.
func isPing(m *nats.Msg) bool { return bytes.Equal(m.Data, emptyFrame) }

// pingAnswerers subscribes, on nc, three stand-in acceptors a0..a2 that
// answer only pings (empty frames), each after its delay, and, while
// imposter is set, a0's in someone else's name. The frames that make a
// Transport know the acceptors get nothing.
type pingAnswerers struct {
	delays   [3]atomic.Int64 // nanoseconds
	imposter atomic.Bool
}

var pingIDs = []string{"a0", "a1", "a2"}

func newPingAnswerers(t *testing.T, nc *nats.Conn) *pingAnswerers {
	t.Helper()
	p := &pingAnswerers{}
	for i, id := range pingIDs {
		subj, err := FrameSubject(DefaultPrefix, testCluster, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) {
			if !isPing(m) {
				return
			}
			time.Sleep(time.Duration(p.delays[i].Load()))
			sender := id
			if i == 0 && p.imposter.Load() {
				sender = "someone"
			}
			reply, _ := EncodeReplyFrame(sender, nil)
			_ = m.Respond(reply)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return p
}

// know makes tr know the three acceptors: it sends them a prepare.
func know(t *testing.T, tr *Transport) {
	t.Helper()
	ch := make(chan synod.PrepareReply, len(pingIDs))
	if err := tr.Prepare(ctxTimeout(t, 10*time.Second), pingIDs, synod.PrepareRequest{Key: "k", Ballot: b1}, ch); err != nil {
		t.Fatal(err)
	}
}

// A Transport finds the acceptors that answer sooner near, follows them when
// they change, and does not count an answer from the wrong acceptor.
func TestTransportNear(t *testing.T) {
	s := natstest.RunServer(t)
	p := newPingAnswerers(t, natstest.Connect(t, s))
	p.delays[1].Store(int64(5 * time.Millisecond))
	p.delays[2].Store(int64(5 * time.Millisecond))

	tr := newTransport(t, natstest.Connect(t, s), WithNearness(20*time.Millisecond))
	if got := tr.Near(); got != nil {
		t.Fatalf("Near before any request = %v, want nil", got)
	}
	know(t, tr)
	waitFor(t, "a0 alone near", func() bool { return nearIs(tr, [][]string{{"a0"}, {"a1", "a2"}}) })

	// a1 becomes as quick: it is near too. The shortest round trip counts,
	// so it is at once.
	p.delays[1].Store(0)
	waitFor(t, "a0 and a1 near", func() bool { return nearIs(tr, [][]string{{"a0", "a1"}, {"a2"}}) })

	// a0's answers come from someone else: a0 no longer counts as
	// reachable, and a1 is near alone.
	p.imposter.Store(true)
	waitFor(t, "a1 alone near", func() bool { return nearIs(tr, [][]string{{"a1"}, {"a2"}}) })
}

// After a reconnect a Transport forgets what it measured through the old
// server and measures again at once: the shortest round trips of before
// would otherwise hold for ten measurements (here, for hours).
func TestTransportNearAfterReconnect(t *testing.T) {
	srv := runRestartableServer(t)
	p := newPingAnswerers(t, srv.connect(t))
	p.delays[1].Store(int64(5 * time.Millisecond))
	p.delays[2].Store(int64(5 * time.Millisecond))
	nc := srv.connect(t)
	tr := newTransport(t, nc, WithNearness(time.Hour))
	know(t, tr)
	waitFor(t, "a0 alone near", func() bool { return nearIs(tr, [][]string{{"a0"}, {"a1", "a2"}}) })

	p.delays[0].Store(int64(5 * time.Millisecond))
	p.delays[1].Store(0)
	srv.shutdown()
	srv.start()
	waitFor(t, "the proposer to reconnect", nc.IsConnected)
	waitFor(t, "a1 alone near", func() bool { return nearIs(tr, [][]string{{"a1"}, {"a0", "a2"}}) })
}

// nearIs reports whether tr's tiers are want.
func nearIs(tr *Transport, want [][]string) bool {
	return slices.EqualFunc(tr.Near(), want, slices.Equal[[]string])
}

// With WithNearness(0) a Transport does not measure.
func TestTransportNearnessOff(t *testing.T) {
	s := natstest.RunServer(t)
	pings := make(chan string, 16) // reply subjects of pings
	nc := natstest.Connect(t, s)
	subj, err := FrameSubject(DefaultPrefix, testCluster, "a0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(subj, func(m *nats.Msg) {
		if isPing(m) {
			pings <- m.Reply
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The silent Transport sends first: measuring, it would ping a0 at
	// once, before the other Transport's ping that the test waits for.
	off := newTransport(t, natstest.Connect(t, s, nats.CustomInboxPrefix("_OFF")), WithNearness(0))
	on := newTransport(t, natstest.Connect(t, s), WithNearness(time.Hour))
	for _, tr := range []*Transport{off, on} {
		ch := make(chan synod.PrepareReply, 1)
		if err := tr.Prepare(ctxTimeout(t, 10*time.Second), []string{"a0"}, synod.PrepareRequest{Key: "k", Ballot: b1}, ch); err != nil {
			t.Fatal(err)
		}
	}
	for {
		select {
		case reply := <-pings:
			if strings.HasPrefix(reply, "_OFF.") {
				t.Fatalf("a Transport with WithNearness(0) pinged a0 (reply subject %s)", reply)
			}
			if off.Near() != nil {
				t.Fatalf("Near with WithNearness(0) = %v", off.Near())
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("no ping from the measuring Transport within 10s")
		}
	}
}
