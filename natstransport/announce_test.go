package natstransport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/synod"
)

// TestTransportAnnouncementEndsFramesInFlight checks the proposer's side of
// an acceptor's announcement after a reconnect: the frame in flight to that
// acceptor, which will get no reply, ends at once with synod.ErrReplyLost
// instead of holding its phase until the request's context ends. Malformed
// announcements and announcements by other acceptors end nothing.
func TestTransportAnnouncementEndsFramesInFlight(t *testing.T) {
	srv := runRestartableServer(t)
	acc := srv.connect(t)
	// Three acceptors that never answer on their own: the test answers for
	// them from acc, whose messages the Transport handles one at a time, in
	// order. The Transport's pings, which come through another inbox, are
	// left unanswered: taking one for the frame would announce to an inbox
	// the Transport does not read.
	requests := map[string]chan *nats.Msg{}
	for _, id := range []string{"mute", "quiet", "late"} {
		ch := make(chan *nats.Msg, 16)
		requests[id] = ch
		if _, err := acc.Subscribe("synod."+testCluster+"."+id+".frame", func(m *nats.Msg) {
			if !isPing(m) {
				ch <- m
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := acc.Flush(); err != nil {
		t.Fatal(err)
	}
	tr := newTransport(t, srv.connect(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	replies := map[string]chan synod.PrepareReply{}
	frames := map[string]*nats.Msg{}
	for _, id := range []string{"mute", "quiet", "late"} {
		replies[id] = make(chan synod.PrepareReply, 1)
		if err := tr.Prepare(ctx, []string{id}, synod.PrepareRequest{Key: "k", Ballot: b1}, replies[id]); err != nil {
			t.Fatal(err)
		}
		select {
		case frames[id] = <-requests[id]:
		case <-time.After(10 * time.Second):
			t.Fatalf("the frame never reached %s", id)
		}
	}
	reply := frames["mute"].Reply
	hello := reply[:strings.LastIndexByte(reply, '.')] + ".0"
	announce := func(data []byte) {
		t.Helper()
		if err := acc.Publish(hello, data); err != nil {
			t.Fatal(err)
		}
	}
	encode := func(from string, items []ReplyItem) []byte {
		t.Helper()
		b, err := EncodeReplyFrame(from, items)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	awaitReply := func(id string) synod.PrepareReply {
		t.Helper()
		select {
		case r := <-replies[id]:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no reply from %s within 10s (the request's context has a minute left)", id)
			return synod.PrepareReply{}
		}
	}
	isLost := func(r synod.PrepareReply, id string) {
		t.Helper()
		if !errors.Is(r.Err, synod.ErrReplyLost) || r.From != id || r.Key != "k" || r.Ballot != b1 ||
			!strings.Contains(r.Err.Error(), "acceptor "+id+": its NATS connection was lost") {
			t.Fatalf("reply %+v, want one from %s for k at %v matching synod.ErrReplyLost that says why", r, id, b1)
		}
	}

	// Ignored: an acceptor without frames here, an announcement with an
	// item, garbage, nothing. Then quiet's, which ends quiet's frame only.
	announce(encode("other", nil))
	announce(encode("mute", []ReplyItem{{Op: itemError, Seq: 1, Error: ItemError{Code: CodeStorage, Message: "x"}}}))
	announce([]byte("garbage"))
	announce(nil)
	announce(encode("quiet", nil))
	// late answers its frame normally. When its reply arrives, the
	// Transport has finished with every message before it.
	reqs, err := DecodeRequestFrame(frames["late"].Data, DefaultLimits())
	if err != nil || len(reqs) != 1 {
		t.Fatalf("late's frame: %v, %d items", err, len(reqs))
	}
	answer := encode("late", []ReplyItem{{Seq: reqs[0].Seq, Op: synod.OpPrepare,
		Prepare: synod.PrepareReply{From: "late", Key: "k", Ballot: b1, OK: true}}})
	if err := acc.Publish(frames["late"].Reply, answer); err != nil {
		t.Fatal(err)
	}
	if r := awaitReply("late"); r.Err != nil || !r.OK {
		t.Fatalf("late's reply: %+v", r)
	}
	isLost(awaitReply("quiet"), "quiet")
	select {
	case r := <-replies["mute"]:
		t.Fatalf("mute's frame ended before its own announcement: %+v", r)
	default:
	}

	announce(encode("mute", nil))
	r := awaitReply("mute")
	isLost(r, "mute")
	t.Logf("reply: %v", r.Err)
	waitFor(t, "the lost requests to leave", func() bool { return tr.Pending() == 0 })

	// mute's pipeline is free: the next request goes out at once.
	if err := tr.Prepare(ctx, []string{"mute"}, synod.PrepareRequest{Key: "k2", Ballot: b1}, make(chan synod.PrepareReply, 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-requests["mute"]:
	case <-time.After(10 * time.Second):
		t.Fatal("the next frame did not reach mute")
	}
}

// TestServiceAnnouncesReconnect checks the acceptor's side: after its NATS
// connection is lost and back, the Service announces itself to the inbox of
// every proposer that sent it a frame, on frame ID 0, with a reply frame
// from it that holds no items.
func TestServiceAnnouncesReconnect(t *testing.T) {
	srv := runRestartableServer(t)
	// The acceptor's connection comes back only after the proposer's has:
	// an announcement made before the proposer resubscribed would reach
	// nobody (a proposer whose own connection dropped ends its frames in
	// flight itself).
	gate := make(chan struct{})
	var open sync.Once
	openGate := func() { open.Do(func() { close(gate) }) }
	h := newHarness(t, func(t testing.TB) *nats.Conn {
		return srv.connect(t, nats.CustomReconnectDelay(func(int) time.Duration { <-gate; return 0 }))
	}, 1, memoryStorage)
	t.Cleanup(openGate) // runs before the harness stops the acceptor
	p := srv.connect(t)
	inbox := "_INBOX.announce"
	msgs := make(chan *nats.Msg, 16)
	if _, err := p.ChanSubscribe(inbox+".*", msgs); err != nil {
		t.Fatal(err)
	}
	subj, err := FrameSubject(DefaultPrefix, testCluster, h.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	frame, err := EncodeRequestFrame([]RequestItem{{Seq: 1, BatchRequest: synod.BatchRequest{Op: synod.OpRead, Read: synod.ReadRequest{Key: "k"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PublishRequest(subj, inbox+".7", frame); err != nil {
		t.Fatal(err)
	}
	// A reply subject of another shape is not a Transport's: not announced to.
	if err := p.PublishRequest(subj, "_INBOX.other.x7", frame); err != nil {
		t.Fatal(err)
	}
	next := func(what string) *nats.Msg {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
			return nil
		}
	}
	if m := next("reply to the frame"); m.Subject != inbox+".7" {
		t.Fatalf("reply on %s, want %s.7", m.Subject, inbox)
	}

	srv.shutdown()
	srv.start()
	waitFor(t, "the proposer to reconnect", p.IsConnected)
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	openGate()
	m := next("announcement after the reconnect")
	if m.Subject != inbox+".0" {
		t.Fatalf("announcement on %s, want %s.0", m.Subject, inbox)
	}
	f, err := DecodeReplyFrame(m.Data, DefaultLimits())
	if err != nil || f.From != h.ids[0] || len(f.Items) != 0 {
		t.Fatalf("announcement %+v, %v: want a reply frame from %s with no items", f, err, h.ids[0])
	}
}

// TestServiceRemembersTransportInboxes checks which reply subjects an
// announcement goes to, and that the memory of them is bounded.
func TestServiceRemembersTransportInboxes(t *testing.T) {
	s := &Service{inboxes: map[string]time.Time{}}
	now := time.Now()
	for _, reply := range []string{"_INBOX.a.1", "_INBOX.a.2", "_INBOX.b.18446744073709551615", "_INBOX.c", "_INBOX.d.x1", "_INBOX.e.", "plain", ".5"} {
		s.noteInboxLocked(reply, now)
	}
	if len(s.inboxes) != 2 || s.inboxes["_INBOX.a"] != now || s.inboxes["_INBOX.b"] != now {
		t.Fatalf("inboxes %v, want _INBOX.a and _INBOX.b", s.inboxes)
	}

	old := now.Add(-inboxWindow - time.Second)
	s.inboxes = map[string]time.Time{}
	for i := range maxInboxes {
		s.noteInboxLocked(fmt.Sprintf("_INBOX.old%d.1", i), old)
	}
	s.noteInboxLocked("_INBOX.fresh.1", now)
	if len(s.inboxes) != 1 || s.inboxes["_INBOX.fresh"] != now {
		t.Fatalf("%d inboxes after a new one met a full table of stale ones, want only the new one", len(s.inboxes))
	}
	for i := range maxInboxes {
		s.noteInboxLocked(fmt.Sprintf("_INBOX.new%d.1", i), now)
	}
	if len(s.inboxes) != maxInboxes || !s.inboxes["_INBOX.fresh"].Equal(now) {
		t.Fatalf("%d inboxes, want the limit %d with the first kept", len(s.inboxes), maxInboxes)
	}
}
