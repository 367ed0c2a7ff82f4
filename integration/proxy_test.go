package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/integration/harness"
)

// proxied puts a toxiproxy proxy between every client connection and its
// NATS server: acceptor i's proxy is proxies[i], proposer j's is
// proxies[acceptors+j]. Proposers ignore the servers NATS advertises, so they
// reconnect through their proxy only. synod-acceptor has no such option: an
// acceptor whose proxied connection is reset may reconnect to a server
// directly (the servers advertise their real addresses), which ends the fault
// for it early; blackholes and latency keep the connection, so they hold.
type proxied struct {
	acceptors int
	proxies   []*harness.Proxy
}

func (p *proxied) envConfig(t *testing.T) envConfig {
	return envConfig{
		natsServers: 3,
		acceptors:   p.acceptors,
		acceptorURL: func(c *harness.NATSCluster, i int) string {
			px := harness.NewProxy(t, c.ClientAddr(i%c.Size()))
			p.proxies = append(p.proxies, px)
			return px.URL()
		},
	}
}

func (p *proxied) proposerURL(r *run, i int) string {
	px := harness.NewProxy(r.t, r.env.nats.ClientAddr(i%r.env.nats.Size()))
	p.proxies = append(p.proxies, px)
	return px.URL()
}

// faultOn applies f to the proxies with the given indexes (all if none) and
// heals them all afterwards.
func (p *proxied) faultOn(f func(*harness.Proxy) error, idx ...int) fault {
	return fault{
		inject: func(context.Context, *run) error {
			targets := p.proxies
			if len(idx) > 0 {
				targets = nil
				for _, i := range idx {
					targets = append(targets, p.proxies[i])
				}
			}
			for _, px := range targets {
				if err := f(px); err != nil {
					return err
				}
			}
			return nil
		},
		heal: func(context.Context, *run) error {
			for _, px := range p.proxies {
				if err := px.Heal(); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// TestNetworkFaults runs the toxiproxy scenarios under load: latency and a
// bandwidth limit on every connection, and a blackhole and TCP resets on one
// acceptor's and one proposer's connection.
func TestNetworkFaults(t *testing.T) {
	skipShort(t)
	base := baseSeed(t)
	const acceptors = 3
	cases := []struct {
		name string
		hold time.Duration
		f    func(p *proxied) fault
	}{
		{"latency", 3 * time.Second, func(p *proxied) fault {
			return p.faultOn(func(px *harness.Proxy) error { return px.AddLatency(40*time.Millisecond, 20*time.Millisecond) })
		}},
		{"bandwidth", 3 * time.Second, func(p *proxied) fault {
			return p.faultOn(func(px *harness.Proxy) error { return px.Bandwidth(8) })
		}},
		{"blackhole", 4 * time.Second, func(p *proxied) fault {
			return p.faultOn((*harness.Proxy).Blackhole, 0, acceptors+0)
		}},
		{"reset-peer", 2 * time.Second, func(p *proxied) fault {
			return p.faultOn((*harness.Proxy).ResetPeer, 1, acceptors+1)
		}},
	}
	for _, c := range cases {
		for s := range seeds() {
			t.Run(c.name, func(t *testing.T) {
				p := &proxied{acceptors: acceptors}
				sc := scenario{
					name: "proxy-" + c.name, env: p.envConfig(t), hold: c.hold, fault: c.f(p),
					proposerURL:  p.proposerURL,
					proposerOpts: []nats.Option{nats.IgnoreDiscoveredServers()},
				}
				runScenario(t, sc, scenarioSeed(t, base+int64(s)))
			})
		}
	}
}

// TestNearestAcceptorsFirst puts one acceptor 20ms farther away (toxiproxy
// latency on its connection) and checks that a proposer's Transport, talking
// to real acceptor processes through real nats-servers, ranks it in a tier
// of its own after the other two, which a thrifty Client then fills its
// subset from. (How much that saves is measured, not asserted: see the
// README's performance section.)
func TestNearestAcceptorsFirst(t *testing.T) {
	skipShort(t)
	p := &proxied{acceptors: 3}
	e := startEnv(t, p.envConfig(t))
	far := e.cfg.Acceptors[1]
	if err := p.proxies[1].AddLatency(20*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	pr := e.newProposer(t, "near", urlsFrom(e.nats, 0), baseSeed(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := pr.client.Change(ctx, "near", func([]byte) ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatal(err)
	}
	var near []string
	for _, id := range e.cfg.Acceptors {
		if id != far {
			near = append(near, id)
		}
	}
	want := [][]string{near, {far}}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.EqualFunc(pr.tr.Near(), want, slices.Equal[[]string]) {
		if time.Now().After(deadline) {
			t.Fatalf("tiers %v after 30s, want %v", pr.tr.Near(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Changes still succeed with subsets taken from the tiers.
	for i := range 20 {
		if _, err := pr.client.Change(ctx, "near", func([]byte) ([]byte, error) { return []byte{byte('a' + i)}, nil }); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
}
