package harness

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// startCluster starts an n-server cluster from the cached binary.
func startCluster(t *testing.T, n int, opts ...NATSOption) *NATSCluster {
	t.Helper()
	bin := natsServerBinary(t)
	return StartNATSCluster(t, n, append([]NATSOption{WithNATSServerBinary(bin)}, opts...)...)
}

// respond serves request/reply on subject from nc, answering "pong".
func respond(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// requestUntil retries a request until it succeeds or ctx ends; interest may
// take a moment to cross routes.
func requestUntil(ctx context.Context, t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("requestUntil needs a context with a deadline")
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		_, err := nc.RequestWithContext(rctx, subject, nil)
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("request %s: %v (last error %v)", subject, ctx.Err(), err)
		}
	}
}

func TestNATSClusterRoutesMessagesBetweenServers(t *testing.T) {
	c := startCluster(t, 3)
	if got := len(c.ClientURLs()); got != 3 {
		t.Fatalf("ClientURLs() has %d URLs, want 3", got)
	}
	// Every pair, both ways: a subscriber on server i sees a publish on j.
	conns := make([]*nats.Conn, 3)
	for i := range conns {
		conns[i] = c.ConnectTo(t, i)
		if got, want := conns[i].ConnectedUrl(), c.ClientURL(i); got != want {
			t.Fatalf("ConnectTo(%d) connected to %s, want %s", i, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for i := range conns {
		respond(t, conns[i], "svc."+c.ServerName(i))
	}
	for i := range conns {
		for j := range conns {
			if i != j {
				requestUntil(ctx, t, conns[j], "svc."+c.ServerName(i))
			}
		}
	}
	conf, err := os.ReadFile(c.ConfigPath(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cluster {", "routes: [", c.ClientAddr(0)} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("config of server 0 lacks %q:\n%s", want, conf)
		}
	}
}

func TestNATSClusterClientFailsOverWhenServerKilled(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	respond(t, c.ConnectTo(t, 2), "svc")

	reconnected := make(chan string, 4)
	nc := c.Connect(t, nats.DontRandomize(), nats.ReconnectHandler(func(nc *nats.Conn) {
		reconnected <- nc.ConnectedUrl()
	}))
	if got := nc.ConnectedUrl(); got != c.ClientURL(0) {
		t.Fatalf("connected to %s, want server 0 (%s)", got, c.ClientURL(0))
	}
	requestUntil(ctx, t, nc, "svc")

	if err := c.Server(0).Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case url := <-reconnected:
		if url == c.ClientURL(0) {
			t.Fatalf("reconnected to the killed server %s", url)
		}
	case <-ctx.Done():
		t.Fatal("client did not reconnect after server 0 was killed")
	}
	requestUntil(ctx, t, nc, "svc")

	// The killed server comes back with the same config and rejoins.
	if err := c.Server(0).Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	requestUntil(ctx, t, c.ConnectTo(t, 0), "svc")
}

func TestNATSClusterStopAndContinue(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	respond(t, c.ConnectTo(t, 0), "svc")
	pinned := c.ConnectTo(t, 1)
	requestUntil(ctx, t, pinned, "svc")

	if err := c.Server(1).Stop(); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := pinned.RequestWithContext(rctx, "svc", nil)
	rcancel()
	if err == nil {
		t.Fatal("request through a stopped server succeeded")
	}
	// WaitReady skips the stopped server.
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady with a stopped server: %v", err)
	}

	if err := c.Server(1).Cont(); err != nil {
		t.Fatal(err)
	}
	requestUntil(ctx, t, pinned, "svc")
}

func TestNATSClusterWithAuthorization(t *testing.T) {
	c := startCluster(t, 2,
		WithServerConfig(`authorization {
  users = [
    { user: "tester", password: "s3cret" }
    { user: "reader", password: "r3ad", permissions: { publish: { deny: ">" } } }
  ]
}`),
		WithClientOptions(nats.UserInfo("tester", "s3cret")))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	if _, err := nats.Connect(c.ClientURL(0), nats.NoReconnect()); err == nil {
		t.Error("connected without credentials to a cluster requiring them")
	}
	respond(t, c.ConnectTo(t, 0), "svc")
	requestUntil(ctx, t, c.Connect(t), "svc")

	denied := make(chan error, 1)
	reader := c.ConnectTo(t, 1, nats.UserInfo("reader", "r3ad"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case denied <- err:
			default:
			}
		}))
	if err := reader.Publish("svc", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-denied:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permission") {
			t.Errorf("async error %v, want a permissions violation", err)
		}
	case <-ctx.Done():
		t.Fatal("publish by a user without publish permission raised no error")
	}
}

func TestNATSClusterWithTLS(t *testing.T) {
	files, err := WriteTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 2, WithServerConfig(files.ServerConfig(true)),
		WithClientOptions(files.ClientOptions()...))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if nc, err := nats.Connect(c.ClientURL(0), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Error("connected without TLS to a cluster requiring it")
	}
	if nc, err := nats.Connect(c.ClientURL(0), nats.NoReconnect(), nats.RootCAs(files.CA)); err == nil {
		nc.Close()
		t.Error("connected without a client certificate to a cluster verifying them")
	}
	respond(t, c.ConnectTo(t, 1), "svc")
	nc := c.Connect(t)
	requestUntil(ctx, t, nc, "svc")
	if !nc.TLSRequired() {
		t.Error("connection does not use TLS")
	}
}
