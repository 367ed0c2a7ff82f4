package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// clusterName is the synod cluster every scenario uses.
const clusterName = "it"

// servingLine is what synod-acceptor logs once it serves.
const servingLine = "natstransport: acceptor serving"

// readyTimeout bounds the start of one acceptor.
const readyTimeout = 30 * time.Second

// envConfig describes the processes of one scenario.
type envConfig struct {
	natsServers int
	acceptors   int
	// acceptorURL returns the -nats flag of acceptor i; nil means server
	// i % natsServers only (it discovers the others from the server).
	acceptorURL func(c *harness.NATSCluster, i int) string
	// acceptorArgs are extra synod-acceptor flags.
	acceptorArgs []string
	// acceptorArgsFor, if set, returns more flags for acceptor i alone.
	acceptorArgsFor func(i int) []string
	natsOpts        []harness.NATSOption
}

// env is the running world of one scenario: a NATS cluster and acceptor
// processes, each acceptor with its own data directory that survives
// restarts.
type env struct {
	t         *testing.T
	nats      *harness.NATSCluster
	acceptors []*harness.Proc
	dataDirs  []string // acceptor i's -data
	cfg       synod.Config
	natsOpts  []nats.Option // client options of the cluster (credentials, TLS)
}

// startEnv starts the NATS cluster and the acceptors and waits until every
// acceptor serves.
func startEnv(t *testing.T, c envConfig) *env {
	t.Helper()
	natsBin := suite.NATSServer(t)
	accBin := suite.Binary(t, "./cmd/synod-acceptor")
	e := &env{t: t}
	e.nats = harness.StartNATSCluster(t, c.natsServers,
		append([]harness.NATSOption{harness.WithNATSServerBinary(natsBin)}, c.natsOpts...)...)
	logDir := t.TempDir()
	for i := range c.acceptors {
		id := fmt.Sprintf("a%d", i)
		e.cfg.Acceptors = append(e.cfg.Acceptors, id)
		url := e.nats.ClientURL(i % c.natsServers)
		if c.acceptorURL != nil {
			url = c.acceptorURL(e.nats, i)
		}
		dir := filepath.Join(t.TempDir(), id)
		e.dataDirs = append(e.dataDirs, dir)
		args := append([]string{
			"-id", id, "-cluster", clusterName,
			"-data", dir,
			"-nats", url,
			"-drain-timeout", "5s",
		}, c.acceptorArgs...)
		if c.acceptorArgsFor != nil {
			args = append(args, c.acceptorArgsFor(i)...)
		}
		p, err := harness.StartProc(t, harness.ProcSpec{Name: "acceptor-" + id, Path: accBin, Args: args, LogDir: logDir})
		if err != nil {
			t.Fatal(err)
		}
		e.acceptors = append(e.acceptors, p)
	}
	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	if err := e.waitServing(ctx, e.acceptors...); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitServing waits until every given acceptor logs that it serves,
// restarting those that exit first (see restart).
func (e *env) waitServing(ctx context.Context, procs ...*harness.Proc) error {
	return e.serve(ctx, false, procs)
}

// restart restarts the given acceptors (killing them first if they still
// run) on their data directories and waits until they serve again.
func (e *env) restart(ctx context.Context, procs ...*harness.Proc) error {
	return e.serve(ctx, true, procs)
}

// serve (re)starts procs and waits until they serve. synod-acceptor refuses
// to start when its start-up probe for a second instance gets no answer
// within 500ms: right after a SIGKILL the old instance's subscription can
// still be registered on its server, and on a loaded machine a stall can
// exceed the probe's timeout. Both are transient, so serve restarts an
// acceptor that exits before serving, until ctx ends.
func (e *env) serve(ctx context.Context, restart bool, procs []*harness.Proc) error {
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() {
			for attempt := 0; ; attempt++ {
				if restart || attempt > 0 {
					if err := p.Restart(); err != nil {
						errs[i] = err
						return
					}
				}
				err := p.WaitOutput(ctx, servingLine)
				if err == nil || ctx.Err() != nil {
					errs[i] = err
					return
				}
				e.t.Logf("%s did not start (%v); retrying", p.Name(), firstLine(err))
				sleep(ctx, 200*time.Millisecond)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// logs returns every process's log for the checker's artifacts.
func (e *env) logs() []harness.LogSource {
	out := []harness.LogSource{e.nats}
	for _, p := range e.acceptors {
		out = append(out, p)
	}
	return out
}

// asyncErrors collects the asynchronous errors of a NATS connection
// (permission violations, slow consumers).
type asyncErrors struct {
	mu   sync.Mutex
	errs []error
	ch   chan struct{} // closed and replaced on every error
}

func newAsyncErrors() *asyncErrors { return &asyncErrors{ch: make(chan struct{})} }

func (a *asyncErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
	close(a.ch)
	a.ch = make(chan struct{})
}

func (a *asyncErrors) all() ([]error, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...), a.ch
}

// proposerConnOptions are the nats.go options of a proposer connection: find
// a dead or paused server within seconds and reconnect forever.
func proposerConnOptions(name string, errs *asyncErrors) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
		nats.Timeout(2 * time.Second),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
		nats.RetryOnFailedConnect(false),
	}
	if errs != nil {
		opts = append(opts, nats.ErrorHandler(errs.handler))
	}
	return opts
}

// proposer is one synod.Client with its own NATS connection.
type proposer struct {
	nc     *nats.Conn
	tr     *natstransport.Transport
	client *synod.Client
}

// newProposer connects a proposer to url (a comma-separated list, tried in
// order) and returns a client to the env's acceptors. extra options go last.
func (e *env) newProposer(t *testing.T, name, url string, seed int64, extra ...nats.Option) *proposer {
	t.Helper()
	opts := append(proposerConnOptions(name, nil), nats.DontRandomize())
	opts = append(opts, e.natsOpts...)
	opts = append(opts, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("proposer %s: connect to %s: %v", name, url, err)
	}
	t.Cleanup(nc.Close)
	tr, err := natstransport.NewTransport(nc, clusterName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	c, err := synod.NewClient(synod.RandomProposerID(name), e.cfg, tr,
		synod.WithRand(newRand(seed)),
		synod.WithPhaseTimeout(time.Second),
		synod.WithBackoff(time.Millisecond, 50*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	return &proposer{nc: nc, tr: tr, client: c}
}

// urlsFrom lists the cluster's client URLs starting with server first, so a
// connection prefers that server and fails over to the others in order.
func urlsFrom(c *harness.NATSCluster, first int) string {
	urls := make([]string, 0, c.Size())
	for k := range c.Size() {
		urls = append(urls, c.ClientURL((first+k)%c.Size()))
	}
	return strings.Join(urls, ",")
}

// firstLine returns the first line of err's message.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
