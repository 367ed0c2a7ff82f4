package procs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// natsReadyLine is what nats-server prints once it accepts clients.
const natsReadyLine = "Server is ready"

// natsStartAttempts bounds how often StartNATSCluster picks new ports after a
// bind failure.
const natsStartAttempts = 3

// pollInterval is how often the harness polls a condition that has no event
// to wait on (monitoring endpoints, message arrival).
const pollInterval = 20 * time.Millisecond

// NATSOption configures [StartNATSCluster].
type NATSOption func(*natsOptions)

type natsOptions struct {
	binary       string
	clusterName  string
	extraConfig  []string
	clientOpts   []nats.Option
	readyTimeout time.Duration
	probe        bool
	jetStream    bool
	syncAlways   bool
	pickPorts    func(n int) ([]int, error) // FreePorts; tests replace it
}

func defaultNATSOptions() natsOptions {
	return natsOptions{
		clusterName:  "protosynod",
		readyTimeout: 30 * time.Second,
		probe:        true,
		pickPorts:    FreePorts,
	}
}

// WithNATSServerBinary sets the nats-server binary to run, normally from
// [Binaries.NATSServer]. Without it StartNATSCluster builds one into a
// temporary directory, which costs a link step per call.
func WithNATSServerBinary(path string) NATSOption {
	return func(o *natsOptions) { o.binary = path }
}

// WithClusterName sets the cluster's name (default "protosynod").
func WithClusterName(name string) NATSOption {
	return func(o *natsOptions) { o.clusterName = name }
}

// WithServerConfig appends a block of nats-server configuration to every
// server's config file, after the harness's own settings (which it may
// override). Use it for accounts, authorization and tls blocks, e.g.
//
//	authorization { users = [ { user: acceptor, password: s3cret,
//	    permissions: { subscribe: "synod.>", publish: "_INBOX.>" } } ] }
//
// It can be given more than once. Clients of a secured cluster need matching
// [WithClientOptions].
func WithServerConfig(block string) NATSOption {
	return func(o *natsOptions) { o.extraConfig = append(o.extraConfig, block) }
}

// WithClientOptions sets nats.go options (credentials, TLS) used by the
// readiness probe and added to every [NATSCluster.Connect].
func WithClientOptions(opts ...nats.Option) NATSOption {
	return func(o *natsOptions) { o.clientOpts = append(o.clientOpts, opts...) }
}

// WithReadyTimeout bounds how long StartNATSCluster waits for the cluster to
// form (default 30s).
func WithReadyTimeout(d time.Duration) NATSOption {
	return func(o *natsOptions) { o.readyTimeout = d }
}

// WithJetStream enables JetStream on every server, each with its own store
// directory in the cluster's directory. With syncAlways every write is
// fsynced before it is acknowledged (sync_interval: always), the durability
// an acceptor gives; without it nats-server's default applies (a sync every
// two minutes).
func WithJetStream(syncAlways bool) NATSOption {
	return func(o *natsOptions) { o.jetStream, o.syncAlways = true, syncAlways }
}

// WithoutProbe skips the publish/subscribe probe across servers, for
// configurations in which the probe's client may not publish or subscribe.
// Readiness then rests on /healthz and /routez only.
func WithoutProbe() NATSOption {
	return func(o *natsOptions) { o.probe = false }
}

// NATSCluster is a cluster of nats-server processes with routes between all of
// them, all on loopback ports. Servers are numbered from 0.
type NATSCluster struct {
	opts    natsOptions
	dir     string
	servers []*natsServer
}

type natsServer struct {
	name        string
	clientPort  int
	clusterPort int
	httpPort    int
	confPath    string
	proc        *Proc
}

// StartNATSCluster starts n nats-server processes as one cluster, each with a
// config file that sets its client, cluster and monitoring ports on
// 127.0.0.1 and routes to every other server. It returns once every server is
// healthy, every server has a route to every other, and (unless
// [WithoutProbe]) a message published on every server reaches a subscriber on
// server 0. If a server fails to start, for instance because another process
// took a port, it retries with new ports. The servers are killed in env's
// cleanup. ctx bounds the build of a binary (without
// [WithNATSServerBinary]) and, with [WithReadyTimeout], the wait.
func StartNATSCluster(ctx context.Context, t Env, n int, opts ...NATSOption) (*NATSCluster, error) {
	t.Helper()
	if n < 1 {
		return nil, fmt.Errorf("procs: StartNATSCluster: n = %d, want at least 1", n)
	}
	o := defaultNATSOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.binary == "" {
		bctx, cancel := context.WithTimeout(ctx, buildTimeout)
		bin, err := BuildNATSServer(bctx, t.TempDir())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("procs: StartNATSCluster: %w", err)
		}
		o.binary = bin
	}
	ctx, cancel := context.WithTimeout(ctx, o.readyTimeout)
	defer cancel()
	c := &NATSCluster{opts: o, dir: t.TempDir()}
	var err error
	for attempt := 1; attempt <= natsStartAttempts; attempt++ {
		err = c.start(ctx, t, n)
		if err == nil {
			return c, nil
		}
		c.killAll()
		if !errors.Is(err, errBind) || ctx.Err() != nil {
			break
		}
		t.Logf("procs: StartNATSCluster attempt %d: %v; retrying with new ports", attempt, err)
	}
	return nil, fmt.Errorf("procs: StartNATSCluster: %w", err)
}

// buildTimeout bounds the build of a nats-server binary by StartNATSCluster.
const buildTimeout = 5 * time.Minute

// errBind marks a start failure that new ports may fix.
var errBind = errors.New("procs: address in use")

func (c *NATSCluster) start(ctx context.Context, t Env, n int) error {
	ports, err := c.opts.pickPorts(3 * n)
	if err != nil {
		return err
	}
	c.servers = make([]*natsServer, n)
	for i := range n {
		c.servers[i] = &natsServer{
			name:        fmt.Sprintf("nats-%d", i),
			clientPort:  ports[3*i],
			clusterPort: ports[3*i+1],
			httpPort:    ports[3*i+2],
		}
	}
	for i, s := range c.servers {
		s.confPath = filepath.Join(c.dir, s.name+".conf")
		if err := os.WriteFile(s.confPath, []byte(c.config(i)), 0o644); err != nil {
			return fmt.Errorf("procs: write %s: %w", s.confPath, err)
		}
	}
	for _, s := range c.servers {
		p, err := StartProc(t, ProcSpec{
			Name:   s.name,
			Path:   c.opts.binary,
			Args:   []string{"-c", s.confPath},
			LogDir: c.dir,
		})
		if err != nil {
			return err
		}
		s.proc = p
	}
	err = nil
	for _, s := range c.servers {
		if err = s.proc.WaitOutput(ctx, natsReadyLine); err != nil {
			break
		}
	}
	if err == nil {
		err = c.WaitReady(ctx)
	}
	if err != nil {
		// Any listener (client, cluster, monitoring) may have lost its port.
		for _, s := range c.servers {
			if line := lineContaining(s.proc.Tail(), "address already in use"); line != "" {
				return fmt.Errorf("%w: %s: %s", errBind, s.name, line)
			}
		}
	}
	return err
}

func (c *NATSCluster) killAll() {
	for _, s := range c.servers {
		if s != nil && s.proc != nil {
			_ = s.proc.Kill()
		}
	}
}

// config renders server i's configuration file.
func (c *NATSCluster) config(i int) string {
	s := c.servers[i]
	var routes []string
	for j, other := range c.servers {
		if j != i {
			routes = append(routes, fmt.Sprintf("    %q", "nats-route://"+hostPort(other.clusterPort)))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by protosynod's integration harness.\n")
	fmt.Fprintf(&b, "server_name: %q\n", s.name)
	fmt.Fprintf(&b, "listen: %q\n", hostPort(s.clientPort))
	fmt.Fprintf(&b, "http: %q\n", hostPort(s.httpPort))
	// Find dead or paused peers and clients within seconds, not minutes.
	fmt.Fprintf(&b, "ping_interval: \"1s\"\nping_max: 3\n")
	fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: %q\n  routes: [\n%s\n  ]\n}\n",
		c.opts.clusterName, hostPort(s.clusterPort), strings.Join(routes, "\n"))
	if c.opts.jetStream {
		fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", filepath.Join(c.dir, "jetstream-"+s.name))
		if c.opts.syncAlways {
			fmt.Fprintf(&b, "  sync_interval: always\n")
		}
		fmt.Fprintf(&b, "}\n")
	}
	for _, block := range c.opts.extraConfig {
		b.WriteString(block)
		b.WriteString("\n")
	}
	return b.String()
}

// ServerName returns server i's name (server_name in its configuration).
func (c *NATSCluster) ServerName(i int) string { return c.servers[i].name }

// Size returns the number of servers.
func (c *NATSCluster) Size() int { return len(c.servers) }

// Server returns server i's process, to kill, stop, continue or restart it.
// A restarted server keeps its config and ports; call
// [NATSCluster.WaitReady] afterwards to wait until it has rejoined.
func (c *NATSCluster) Server(i int) *Proc { return c.servers[i].proc }

// ClientURLs returns every server's client URL.
func (c *NATSCluster) ClientURLs() []string {
	urls := make([]string, len(c.servers))
	for i := range c.servers {
		urls[i] = c.ClientURL(i)
	}
	return urls
}

// ClientURL returns server i's client URL, nats://127.0.0.1:<port>.
func (c *NATSCluster) ClientURL(i int) string {
	return "nats://" + c.ClientAddr(i)
}

// ClientAddr returns server i's client address, 127.0.0.1:<port>, for
// example as a [NewProxy] upstream.
func (c *NATSCluster) ClientAddr(i int) string {
	return hostPort(c.servers[i].clientPort)
}

// MonitorURL returns the base URL of server i's HTTP monitoring endpoint.
func (c *NATSCluster) MonitorURL(i int) string {
	return "http://" + hostPort(c.servers[i].httpPort)
}

// ConfigPath returns the path of server i's config file.
func (c *NATSCluster) ConfigPath(i int) string { return c.servers[i].confPath }

// LogFiles returns every server's log file, so a cluster can be passed to
// [WithLogs].
func (c *NATSCluster) LogFiles() []string {
	files := make([]string, 0, len(c.servers))
	for _, s := range c.servers {
		files = append(files, s.proc.LogPath())
	}
	return files
}

// ClientDefaults are the nats.go options every [NATSCluster.Connect] starts
// from: reconnect forever with a short wait, and notice a paused server
// within a few seconds.
func ClientDefaults() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
		nats.Timeout(2 * time.Second),
		// Notice a paused (SIGSTOP) server within a few seconds.
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
	}
}

// Connect connects to the cluster with every server's URL, with
// [ClientDefaults], the cluster's [WithClientOptions] and opts (later
// options win). The caller closes the connection.
func (c *NATSCluster) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append(ClientDefaults(), c.opts.clientOpts...)
	all = append(all, opts...)
	nc, err := nats.Connect(strings.Join(c.ClientURLs(), ","), all...)
	if err != nil {
		return nil, fmt.Errorf("procs: connect to %v: %w", c.ClientURLs(), err)
	}
	return nc, nil
}

// ConnectTo connects to server i only: it ignores the servers the cluster
// advertises, so it reconnects to server i alone. Otherwise it behaves like
// [NATSCluster.Connect].
func (c *NATSCluster) ConnectTo(i int, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := c.dial(i, opts...)
	if err != nil {
		return nil, fmt.Errorf("procs: %w", err)
	}
	return nc, nil
}

func (c *NATSCluster) dial(i int, opts ...nats.Option) (*nats.Conn, error) {
	all := append(ClientDefaults(), nats.IgnoreDiscoveredServers())
	all = append(all, c.opts.clientOpts...)
	all = append(all, opts...)
	nc, err := nats.Connect(c.ClientURL(i), all...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.servers[i].name, err)
	}
	return nc, nil
}

// WaitReady waits until every server that is running and not stopped is
// healthy, has a route to every other such server, and (unless
// [WithoutProbe]) relays messages to the first of them. Call it after
// restarting servers. A server paused with [Proc.Stop] is skipped.
func (c *NATSCluster) WaitReady(ctx context.Context) error {
	var up []int
	for i, s := range c.servers {
		if s.proc.Running() && !s.proc.Stopped() {
			up = append(up, i)
		}
	}
	for _, i := range up {
		if err := c.waitHealthy(ctx, i); err != nil {
			return err
		}
	}
	for _, i := range up {
		if err := c.waitRoutes(ctx, i, up); err != nil {
			return err
		}
	}
	if c.opts.probe && len(up) > 1 {
		for _, k := range up[1:] {
			if err := c.probe(ctx, up[0], k); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitHealthy polls server i's /healthz until it answers 200.
func (c *NATSCluster) waitHealthy(ctx context.Context, i int) error {
	return c.poll(ctx, i, "healthy", func(ctx context.Context) (bool, error) {
		code, err := httpGet(ctx, c.MonitorURL(i)+"/healthz", nil)
		if err != nil {
			return false, nil
		}
		return code == http.StatusOK, nil
	})
}

// waitRoutes polls server i's /routez until it lists a route to every server
// in peers other than itself.
func (c *NATSCluster) waitRoutes(ctx context.Context, i int, peers []int) error {
	return c.poll(ctx, i, "routed", func(ctx context.Context) (bool, error) {
		var rz struct {
			Routes []struct {
				RemoteName string `json:"remote_name"`
			} `json:"routes"`
		}
		if _, err := httpGet(ctx, c.MonitorURL(i)+"/routez", &rz); err != nil {
			return false, nil
		}
		have := make(map[string]bool)
		for _, r := range rz.Routes {
			have[r.RemoteName] = true
		}
		for _, j := range peers {
			if j != i && !have[c.servers[j].name] {
				return false, nil
			}
		}
		return true, nil
	})
}

// probe subscribes on server to and publishes on server from until a message
// arrives: interest has propagated over the route between them.
func (c *NATSCluster) probe(ctx context.Context, to, from int) error {
	sub, err := c.dial(to, nats.MaxReconnects(0))
	if err != nil {
		return fmt.Errorf("procs: probe: %w", err)
	}
	defer sub.Close()
	pub, err := c.dial(from, nats.MaxReconnects(0))
	if err != nil {
		return fmt.Errorf("procs: probe: %w", err)
	}
	defer pub.Close()
	subject := "_HARNESS.probe." + nats.NewInbox()[len(nats.InboxPrefix):]
	ch := make(chan *nats.Msg, 1)
	s, err := sub.ChanSubscribe(subject, ch)
	if err != nil {
		return fmt.Errorf("procs: probe subscribe on %s: %w", c.servers[to].name, err)
	}
	defer func() { _ = s.Unsubscribe() }()
	if err := sub.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("procs: probe flush on %s: %w", c.servers[to].name, err)
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if err := pub.Publish(subject, nil); err != nil {
			return fmt.Errorf("procs: probe publish on %s: %w", c.servers[from].name, err)
		}
		select {
		case <-ch:
			return nil
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("procs: probe: no message from %s reached %s: %w",
				c.servers[from].name, c.servers[to].name, ctx.Err())
		}
	}
}

// poll calls cond every pollInterval until it returns true, server i exits, or
// ctx ends.
func (c *NATSCluster) poll(ctx context.Context, i int, what string, cond func(context.Context) (bool, error)) error {
	s := c.servers[i]
	exited := s.proc.Exited()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-tick.C:
		case <-exited:
			return fmt.Errorf("procs: %s exited before it was %s: %w; last output:\n%s",
				s.name, what, ErrNotRunning, lastLines(s.proc.Tail(), failureTailLines))
		case <-ctx.Done():
			return fmt.Errorf("procs: %s not %s: %w", s.name, what, ctx.Err())
		}
	}
}

// httpGet fetches url and, if into is not nil and the status is 200, decodes
// the JSON body into it. Each request is bounded to a second so a paused
// server cannot hang the caller.
func httpGet(ctx context.Context, url string, into any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	// No keep-alives: a paused or killed server must not hold idle
	// connections, and every poll sees the server's current state.
	client := http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// lineContaining returns the first line of s that contains substr, or "".
func lineContaining(s, substr string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
