package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxy is an in-process toxiproxy TCP proxy on a loopback port in front of
// one upstream address, typically a nats-server client port. Faults apply to
// connections already open and to new ones, until [Proxy.Heal].
//
// Clients that connect to NATS through a proxy should use
// nats.IgnoreDiscoveredServers(), or they may reconnect to a server's real
// address (which the server advertises) and bypass the proxy.
type Proxy struct {
	mu    sync.Mutex
	proxy *toxiproxy.Proxy
}

// NewProxy starts a proxy on a free 127.0.0.1 port that forwards to upstream
// (host:port). It fails the test on error and stops the proxy, closing its
// connections, in t.Cleanup. The toxiproxy HTTP API is not started: toxics are
// added directly.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	px := &Proxy{proxy: newToxiproxy(t, upstream)}
	t.Cleanup(func() { px.close(t) })
	return px
}

// newToxiproxy starts a toxiproxy proxy to upstream on a free port.
func newToxiproxy(t testing.TB, upstream string) *toxiproxy.Proxy {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "harness-"+upstream, hostPort(0), upstream)
	// Binding port 0 cannot collide; proxy.Listen then holds the real port.
	if err := p.Start(); err != nil {
		t.Fatalf("harness: start proxy to %s: %v", upstream, err)
	}
	return p
}

// closeTimeout bounds how long closing a proxy may take before the harness
// gives up on it (leaving its goroutines) rather than hang the test.
const closeTimeout = 10 * time.Second

// Addr returns the proxy's listening address, 127.0.0.1:<port>. It stays the
// same across [Proxy.Disable] and [Proxy.Heal].
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proxy.Lock()
	defer p.proxy.Unlock()
	return p.proxy.Listen
}

// URL returns nats://<Addr>, for connecting a NATS client through the proxy.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.proxy.Upstream }

// AddLatency delays data by latency ± jitter in each direction, so a round
// trip grows by about twice latency. It replaces an earlier latency fault.
func (p *Proxy) AddLatency(latency, jitter time.Duration) error {
	return p.addBoth("latency", map[string]any{
		"latency": latency.Milliseconds(),
		"jitter":  jitter.Milliseconds(),
	})
}

// Bandwidth limits each direction to kbps kilobytes per second. It replaces
// an earlier bandwidth fault. (toxiproxy's bandwidth toxic logs a trace line
// to stderr through zerolog's global logger when it is removed; the harness
// leaves that global alone.)
func (p *Proxy) Bandwidth(kbps int64) error {
	return p.addBoth("bandwidth", map[string]any{"rate": kbps})
}

// Blackhole silently drops all data in both directions while connections stay
// open (toxiproxy's timeout toxic with timeout 0), like a partition in which
// packets vanish. New connections are accepted and also get nothing. When
// [Proxy.Heal] removes it, toxiproxy closes the connections that were
// blackholed; clients reconnect.
func (p *Proxy) Blackhole() error {
	return p.addBoth("timeout", map[string]any{"timeout": 0})
}

// ResetPeer resets every connection with a TCP RST as soon as data flows on
// it (toxiproxy's reset_peer toxic with timeout 0), until [Proxy.Heal].
func (p *Proxy) ResetPeer() error {
	return p.addBoth("reset_peer", map[string]any{"timeout": 0})
}

// Disable stops the proxy: it closes every connection and refuses new ones,
// like a host that is down. [Proxy.Heal] starts it again on the same address.
func (p *Proxy) Disable() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proxy.Stop()
	return nil
}

// Heal removes every fault and re-enables a disabled proxy.
func (p *Proxy) Heal() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proxy.Toxics.ResetToxics(context.Background())
	p.proxy.Lock()
	enabled := p.proxy.Enabled
	p.proxy.Unlock()
	if !enabled {
		if err := p.proxy.Start(); err != nil {
			return fmt.Errorf("harness: re-enable proxy to %s: %w", p.proxy.Upstream, err)
		}
	}
	return nil
}

// close stops the proxy, closing its connections. It stops the proxy first
// and never resets the toxics: ResetToxics holds the toxic collection's lock
// while it waits for every link to drop each toxic, and a link that is
// closing waits for that same lock in RemoveLink, so reset-then-stop could
// hang until the test's timeout. The toxics go with the proxy. Stop itself is
// bounded by closeTimeout.
func (p *Proxy) close(t testing.TB) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.proxy.Stop()
	}()
	select {
	case <-done:
	case <-time.After(closeTimeout):
		t.Logf("harness: proxy to %s did not stop within %v; leaving it", p.proxy.Upstream, closeTimeout)
	}
}

// addBoth adds a toxic of the given type to both directions, replacing toxics
// of that type added before.
func (p *Proxy) addBoth(kind string, attrs map[string]any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, stream := range []string{"upstream", "downstream"} {
		name := kind + "_" + stream
		if p.proxy.Toxics.GetToxic(name) != nil {
			if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
				return fmt.Errorf("harness: proxy to %s: replace %s: %w", p.proxy.Upstream, name, err)
			}
		}
		body, err := json.Marshal(map[string]any{
			"name":       name,
			"type":       kind,
			"stream":     stream,
			"toxicity":   1.0,
			"attributes": attrs,
		})
		if err != nil {
			return fmt.Errorf("harness: proxy to %s: encode %s: %w", p.proxy.Upstream, name, err)
		}
		if _, err := p.proxy.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
			return fmt.Errorf("harness: proxy to %s: add %s: %w", p.proxy.Upstream, name, err)
		}
	}
	return nil
}
