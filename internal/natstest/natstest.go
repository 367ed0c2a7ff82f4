package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyTimeout bounds how long RunServer waits for the server to accept
// clients.
const readyTimeout = 5 * time.Second

// Option adjusts the server options before the server is created.
type Option func(*server.Options)

// WithJetStream enables JetStream and stores its data in dir. Pass a
// directory owned by the test, such as t.TempDir().
func WithJetStream(dir string) Option {
	return func(o *server.Options) {
		o.JetStream = true
		o.StoreDir = dir
	}
}

// WithServerName sets the server's name, which shows up in client info and
// monitoring output.
func WithServerName(name string) Option {
	return func(o *server.Options) {
		o.ServerName = name
	}
}

// RunServer starts an embedded NATS server on 127.0.0.1 with a random port
// and waits until it accepts clients. It fails the test if the server cannot
// start. A cleanup registered on t shuts the server down and waits for it to
// finish.
func RunServer(t testing.TB, opts ...Option) *server.Server {
	t.Helper()
	o := &server.Options{
		Host:   "127.0.0.1",
		Port:   -1,
		NoLog:  true,
		NoSigs: true,
	}
	for _, opt := range opts {
		opt(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		t.Fatalf("natstest: server not ready after %v", readyTimeout)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s through nats.InProcessServer, so no
// socket is involved, and registers a cleanup that closes it. Extra options
// are applied after the in-process one. It fails the test if the connection
// cannot be made. Closing the connection earlier, for example to simulate a
// crashed client, is allowed.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{nats.InProcessServer(s)}, opts...)
	nc, err := nats.Connect(s.ClientURL(), all...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
