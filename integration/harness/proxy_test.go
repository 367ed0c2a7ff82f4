package harness

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// timedRequest sends one request with the given timeout and returns how long
// it took.
func timedRequest(ctx context.Context, nc *nats.Conn, subject string, payload []byte, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	_, err := nc.RequestWithContext(ctx, subject, payload)
	return time.Since(start), err
}

func TestProxyFaults(t *testing.T) {
	c := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	respond(t, c.ConnectTo(t, 0), "svc")

	p := NewProxy(t, c.ClientAddr(0))
	if p.Upstream() != c.ClientAddr(0) {
		t.Fatalf("Upstream() = %s, want %s", p.Upstream(), c.ClientAddr(0))
	}
	nc, err := nats.Connect(p.URL(), append(clientDefaults(), nats.IgnoreDiscoveredServers())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	requestUntil(ctx, t, nc, "svc")

	t.Run("latency", func(t *testing.T) {
		if err := p.AddLatency(100*time.Millisecond, 0); err != nil {
			t.Fatal(err)
		}
		// Adding it again replaces it.
		if err := p.AddLatency(100*time.Millisecond, 0); err != nil {
			t.Fatal(err)
		}
		took, err := timedRequest(ctx, nc, "svc", nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if took < 200*time.Millisecond {
			t.Errorf("request with 100ms latency each way took %v, want ≥ 200ms", took)
		}
		if err := p.Heal(); err != nil {
			t.Fatal(err)
		}
		took, err = timedRequest(ctx, nc, "svc", nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if took >= 100*time.Millisecond {
			t.Errorf("request after Heal took %v, want < 100ms", took)
		}
	})

	t.Run("bandwidth", func(t *testing.T) {
		// 64 KiB up at 256 KB/s takes about 250ms.
		if err := p.Bandwidth(256); err != nil {
			t.Fatal(err)
		}
		took, err := timedRequest(ctx, nc, "svc", make([]byte, 64<<10), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if took < 150*time.Millisecond {
			t.Errorf("64 KiB at 256 KB/s took %v, want ≥ 150ms", took)
		}
		if err := p.Heal(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("blackhole", func(t *testing.T) {
		if err := p.Blackhole(); err != nil {
			t.Fatal(err)
		}
		if _, err := timedRequest(ctx, nc, "svc", nil, 300*time.Millisecond); err == nil {
			t.Fatal("request through a blackhole succeeded")
		}
		if err := p.Heal(); err != nil {
			t.Fatal(err)
		}
		// Healing closes the blackholed connection; the client reconnects.
		requestUntil(ctx, t, nc, "svc")
	})

	t.Run("reset", func(t *testing.T) {
		disconnected := make(chan struct{}, 1)
		nc.SetDisconnectErrHandler(func(*nats.Conn, error) {
			select {
			case disconnected <- struct{}{}:
			default:
			}
		})
		defer nc.SetDisconnectErrHandler(nil)
		if err := p.ResetPeer(); err != nil {
			t.Fatal(err)
		}
		_, _ = timedRequest(ctx, nc, "svc", nil, 300*time.Millisecond)
		select {
		case <-disconnected:
		case <-ctx.Done():
			t.Fatal("connection was not reset")
		}
		if err := p.Heal(); err != nil {
			t.Fatal(err)
		}
		requestUntil(ctx, t, nc, "svc")
	})

	t.Run("disable", func(t *testing.T) {
		addr := p.Addr()
		if err := p.Disable(); err != nil {
			t.Fatal(err)
		}
		if _, err := timedRequest(ctx, nc, "svc", nil, 300*time.Millisecond); err == nil {
			t.Fatal("request through a disabled proxy succeeded")
		}
		if err := p.Heal(); err != nil {
			t.Fatal(err)
		}
		if p.Addr() != addr {
			t.Errorf("address changed from %s to %s across Disable/Heal", addr, p.Addr())
		}
		requestUntil(ctx, t, nc, "svc")
	})
}
