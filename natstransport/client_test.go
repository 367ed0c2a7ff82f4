package natstransport

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// fakeAcceptor answers the prepare items of frames on acceptor id's subject
// with the replies that answer returns for each, each in a reply frame of its
// own from the reply's sender, published in order to the reply subject.
func fakeAcceptor(t *testing.T, nc *nats.Conn, id string, answer func(synod.PrepareRequest) []synod.PrepareReply) {
	t.Helper()
	subj, err := FrameSubject(DefaultPrefix, testCluster, id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = nc.Subscribe(subj, func(m *nats.Msg) {
		items, err := DecodeRequestFrame(m.Data, DefaultLimits())
		if err != nil {
			t.Errorf("fake %s: %v", id, err)
			return
		}
		for _, it := range items {
			for _, rep := range answer(it.Prepare) {
				frame := mustEncode(EncodeReplyFrame(rep.From, []ReplyItem{{Seq: it.Seq, Op: synod.OpPrepare, Prepare: rep}}))
				if err := nc.Publish(m.Reply, frame); err != nil {
					t.Errorf("fake %s: %v", id, err)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func promise(from string, req synod.PrepareRequest) synod.PrepareReply {
	return synod.PrepareReply{From: from, Key: req.Key, Ballot: req.Ballot, OK: true}
}

// collect reads replies until n arrived or d passed.
func collect[T any](ch <-chan T, n int, d time.Duration) []T {
	var got []T
	timeout := time.After(d)
	for len(got) < n {
		select {
		case r := <-ch:
			got = append(got, r)
		case <-timeout:
			return got
		}
	}
	return got
}

// TestTransportOneReplyPerAcceptor has acceptors that answer twice, answer in
// another acceptor's name, or answer for another key or ballot: only the first
// genuine reply of each acceptor in to is delivered.
func TestTransportOneReplyPerAcceptor(t *testing.T) {
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	fakeAcceptor(t, nc, "a0", func(r synod.PrepareRequest) []synod.PrepareReply {
		return []synod.PrepareReply{promise("a0", r), promise("a0", r), promise("a0", r)}
	})
	fakeAcceptor(t, nc, "a1", func(r synod.PrepareRequest) []synod.PrepareReply {
		other := r
		other.Key = "other"
		later := r
		later.Ballot.Counter++
		return []synod.PrepareReply{promise("a9", r), promise("a0", r), promise("a1", other), promise("a1", later), promise("a1", r)}
	})
	fakeAcceptor(t, nc, "a2", func(r synod.PrepareRequest) []synod.PrepareReply {
		return []synod.PrepareReply{promise("a2", r)} // a2 is not asked below
	})
	tr := newTransport(t, natstest.Connect(t, s))

	replies := make(chan synod.PrepareReply, 10)
	ctx := ctxTimeout(t, 5*time.Second)
	req := synod.PrepareRequest{Key: "k", Ballot: b1}
	if err := tr.Prepare(ctx, []string{"a0", "a1", "a0"}, req, replies); err != nil {
		t.Fatal(err)
	}
	got := collect(replies, 2, 5*time.Second)
	// Both acceptors have answered, so the request is no longer pending;
	// whatever comes later is ignored.
	if n := tr.Pending(); n != 0 {
		t.Errorf("pending after every acceptor answered: got %d, want 0", n)
	}
	got = append(got, collect(replies, 1, 100*time.Millisecond)...)
	from := map[string]int{}
	for _, r := range got {
		from[r.From]++
		if r.Key != req.Key || r.Ballot != req.Ballot {
			t.Errorf("delivered a reply for %q at %v", r.Key, r.Ballot)
		}
	}
	if len(got) != 2 || from["a0"] != 1 || from["a1"] != 1 {
		t.Errorf("delivered %d replies from %v, want one each from a0 and a1", len(got), from)
	}
}

// TestTransportPendingDoesNotLeak checks that requests leave the pending map
// when every acceptor answered, when their context ends, and when no publish
// succeeded, and that waiting requests need no goroutine each.
func TestTransportPendingDoesNotLeak(t *testing.T) {
	s := natstest.RunServer(t)
	newHarness(t, inProcess(s), 2, memoryStorage) // a0, a1; a2 is never served
	tr := newTransport(t, natstest.Connect(t, s))
	to := []string{"a0", "a1", "a2"}

	// Answered by everyone who is there: a0 and a1 reply, the server answers
	// "no responders" for a2.
	for i := range 50 {
		replies := make(chan synod.PrepareReply, 3)
		req := synod.PrepareRequest{Key: "k" + string(rune('a'+i%26)), Ballot: b1}
		if err := tr.Prepare(ctxTimeout(t, 5*time.Second), to, req, replies); err != nil {
			t.Fatal(err)
		}
		if got := collect(replies, 2, 5*time.Second); len(got) != 2 {
			t.Fatalf("got %d replies, want 2", len(got))
		}
	}
	waitFor(t, "answered requests to leave", func() bool { return tr.Pending() == 0 })

	// Never answered: an acceptor that does not reply at all.
	silent := natstest.Connect(t, s)
	if _, err := silent.Subscribe("synod.c1.mute.frame", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := silent.Flush(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	const n = 1000
	for range n {
		if err := tr.Prepare(ctx, []string{"mute"}, synod.PrepareRequest{Key: "k", Ballot: b1}, make(chan synod.PrepareReply, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if got := tr.Pending(); got != n {
		t.Errorf("pending: got %d, want %d", got, n)
	}
	if grown := runtime.NumGoroutine() - before; grown > 10 {
		t.Errorf("%d goroutines more for %d waiting requests", grown, n)
	}
	cancel()
	waitFor(t, "canceled requests to leave", func() bool { return tr.Pending() == 0 })

	// Nothing could be sent.
	if err := tr.Prepare(ctxTimeout(t, time.Second), []string{"bad.id"}, synod.PrepareRequest{Key: "k", Ballot: b1}, make(chan synod.PrepareReply, 1)); !errors.Is(err, ErrInvalidID) {
		t.Errorf("invalid acceptor ID: got %v, want ErrInvalidID", err)
	}
	if got := tr.Pending(); got != 0 {
		t.Errorf("pending after a request nobody got: %d", got)
	}
}

// TestTransportPartialPublishFailure sends to one invalid and two valid IDs:
// the call reports the failure, and the valid acceptors' replies arrive.
func TestTransportPartialPublishFailure(t *testing.T) {
	s := natstest.RunServer(t)
	newHarness(t, inProcess(s), 2, memoryStorage)
	tr := newTransport(t, natstest.Connect(t, s))
	replies := make(chan synod.AcceptReply, 3)
	err := tr.Accept(ctxTimeout(t, 5*time.Second), []string{"a0", "bad*id", "a1"}, synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("v")}, replies)
	if !errors.Is(err, ErrInvalidID) {
		t.Errorf("got %v, want an error matching ErrInvalidID", err)
	}
	if got := collect(replies, 2, 5*time.Second); len(got) != 2 || !got[0].OK || !got[1].OK {
		t.Errorf("replies: got %+v, want two acceptances", got)
	}
}

func TestTransportRefusesBeforeSending(t *testing.T) {
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	tr := newTransport(t, nc, WithLimits(Limits{MaxValue: 10}))
	ctx := ctxTimeout(t, 5*time.Second)
	ch := make(chan synod.AcceptReply, 1)
	tests := []struct {
		name string
		req  synod.AcceptRequest
		want error
	}{
		{"value over limit", synod.AcceptRequest{Key: "k", Ballot: b1, Value: make([]byte, 11)}, ErrTooLarge},
		{"zero ballot", synod.AcceptRequest{Key: "k"}, synod.ErrInvalidRequest},
		{"empty key", synod.AcceptRequest{Ballot: b1}, synod.ErrInvalidRequest},
		{"key over limit", synod.AcceptRequest{Key: string(make([]byte, MaxKeySize+1)), Ballot: b1}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tr.Accept(ctx, []string{"a0"}, tt.req, ch); !errors.Is(err, tt.want) || !errors.Is(err, synod.ErrInvalidRequest) {
				t.Errorf("got %v, want %v and synod.ErrInvalidRequest", err, tt.want)
			}
		})
	}
	if tr.Pending() != 0 {
		t.Errorf("refused requests are pending")
	}
}

func TestTransportClose(t *testing.T) {
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	tr, err := NewTransport(nc, testCluster)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Prepare(ctxTimeout(t, 5*time.Second), []string{"a0"}, synod.PrepareRequest{Key: "k", Ballot: b1}, make(chan synod.PrepareReply, 1)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if tr.Pending() != 0 || tr.sub.IsValid() {
		t.Errorf("after Close: %d pending, subscription valid %v", tr.Pending(), tr.sub.IsValid())
	}
	if err := tr.Prepare(ctxTimeout(t, 5*time.Second), []string{"a0"}, synod.PrepareRequest{Key: "k", Ballot: b1}, make(chan synod.PrepareReply, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("prepare after Close: got %v, want ErrClosed", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := NewTransport(nc, "bad.cluster"); !errors.Is(err, synod.ErrInvalidConfig) || !errors.Is(err, ErrInvalidID) {
		t.Errorf("invalid cluster: got %v", err)
	}
}
