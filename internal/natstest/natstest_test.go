package natstest_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
)

func TestRunServerAndConnect(t *testing.T) {
	s := natstest.RunServer(t, natstest.WithServerName("natstest"))
	pub := natstest.Connect(t, s)
	sub := natstest.Connect(t, s, nats.Name("subscriber"))

	ch := make(chan *nats.Msg, 1)
	if _, err := sub.ChanSubscribe("natstest.ping", ch); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := pub.Publish("natstest.ping", []byte("pong")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case m := <-ch:
		if got, want := string(m.Data), "pong"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered")
	}
	if got, want := s.Name(), "natstest"; got != want {
		t.Fatalf("server name: got %q, want %q", got, want)
	}
}

func TestWithJetStream(t *testing.T) {
	s := natstest.RunServer(t, natstest.WithJetStream(t.TempDir()))
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream not enabled")
	}
}

func TestServersDoNotShareAPort(t *testing.T) {
	a := natstest.RunServer(t)
	b := natstest.RunServer(t)
	if a.ClientURL() == b.ClientURL() {
		t.Fatalf("both servers at %s", a.ClientURL())
	}
}
