// Command cluster is protosynod's example cluster. With no flags it starts
// an embedded NATS server, three acceptors on Pebble, three protoactor
// cluster members and a cluster client in one process, and narrates a
// scenario: a missile launch state machine, bank accounts under concurrent
// traffic, and the crash of the member hosting the most grains, whose
// grains resume elsewhere with their state. It exits 1 if an invariant
// failed.
//
// Each role can also run as its own process against an external NATS:
//
//	go run ./examples/cluster -role acceptor -id a1 -data /tmp/ex/a1 -nats nats://127.0.0.1:4222
//	go run ./examples/cluster -role member -id m1 -nats nats://127.0.0.1:4222
//	go run ./examples/cluster -role client -nats nats://127.0.0.1:4222
//
// -creds, -nkey, -tls-cert, -tls-key and -tls-ca connect to a secured NATS
// as they do for synod-acceptor (package internal/cliflags).
//
// See the README's "Example cluster" section.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/protosynod/protosynod/examples/cluster/scenario"
	"github.com/protosynod/protosynod/internal/cliflags"
	"github.com/protosynod/protosynod/internal/promexport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

type flags struct {
	role, id, data, host, acceptors, cluster, show string
	conn                                           cliflags.NATS
	metrics                                        string
	seed                                           uint64
	members                                        int
	verbose                                        bool
}

func parse(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.role, "role", "all", "all (everything in this process), acceptor, member or client")
	f.conn.RegisterURL(fs, "", "NATS server URLs, comma-separated (required unless -role all, which starts an embedded server)")
	fs.StringVar(&f.id, "id", "", "node ID: acceptor a1, a2, a3 (see -acceptors); member m1, m2, ...; client c1")
	fs.StringVar(&f.data, "data", "", "acceptor data directory (-role all: parent of a1, a2, a3, kept at exit; default a temporary directory removed at exit)")
	fs.StringVar(&f.host, "host", "127.0.0.1", "address members and clients bind protoactor remoting to")
	fs.StringVar(&f.acceptors, "acceptors", "a1,a2,a3", "acceptor IDs, comma-separated")
	fs.StringVar(&f.cluster, "cluster", "example", "cluster name (NATS subjects synod.NAME.* and protoactor.NAME.*)")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of the traffic and backoff (0: random, printed)")
	fs.StringVar(&f.show, "show", "", "-role client: instead of running the scenario, show the grains of this earlier run ID")
	fs.IntVar(&f.members, "members", 1, "-role client: wait until this many members have joined")
	fs.BoolVar(&f.verbose, "v", false, "log the nodes' messages to stderr")
	fs.StringVar(&f.metrics, "metrics", "", "serve the acceptors' and synod clients' metrics in Prometheus text at http://ADDR/metrics (-role all: until Ctrl-C after the scenario)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, err
		}
		return f, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	switch f.role {
	case "all":
	case "acceptor":
		if f.id == "" || f.data == "" {
			return f, fmt.Errorf("%w: -role acceptor needs -id and -data", errUsage)
		}
	case "member", "client":
		if f.id == "" {
			f.id = f.role
		}
	default:
		return f, fmt.Errorf("%w: unknown -role %q", errUsage, f.role)
	}
	if f.role != "all" && f.conn.URLs == "" {
		return f, fmt.Errorf("%w: -role %s needs -nats", errUsage, f.role)
	}
	if err := f.conn.Validate(); err != nil {
		return f, fmt.Errorf("%w: %w", errUsage, err)
	}
	if f.seed == 0 {
		f.seed = rand.Uint64()
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	if f.verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg := scenario.DefaultConfig(f.conn.URLs)
	if cfg.NATSOptions, err = f.conn.Options(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	cfg.Cluster, cfg.Host, cfg.Seed, cfg.Logger = f.cluster, f.host, f.seed, log
	cfg.Acceptors = strings.Split(f.acceptors, ",")
	if f.metrics != "" {
		exp, srv, stop, err := promexport.Serve(f.metrics, log)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(stdout, "metrics at %s\n", srv.URL())
		cfg.MeterProvider = exp.Provider
	}
	switch f.role {
	case "acceptor":
		a, err := scenario.StartAcceptor(ctx, cfg, f.id, f.data)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "acceptor %s serving %s on %s (data %s); Ctrl-C to stop\n", f.id, cfg.Cluster, f.conn.URLs, f.data)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.Close(sctx)
	case "member":
		m, err := scenario.StartMember(ctx, cfg, f.id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "member %s at %s joined %s (sees %d members); Ctrl-C to leave\n", f.id, m.Address(), cfg.Cluster, m.Members())
		<-ctx.Done()
		m.Stop()
		return nil
	case "client":
		c, err := scenario.StartClient(ctx, cfg, f.id)
		if err != nil {
			return err
		}
		defer c.Stop()
		if err := waitMembers(ctx, c, f.members); err != nil {
			return err
		}
		env := scenario.Env{Client: c, Out: stdout, Seed: f.seed, RunID: f.show}
		if f.show != "" {
			return scenario.Show(ctx, env)
		}
		_, err = scenario.Run(ctx, env)
		return err
	}
	return runAll(ctx, f, cfg, stdout)
}

// waitMembers waits until c sees n members.
func waitMembers(ctx context.Context, c *scenario.Node, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for c.Members() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s sees %d members, want %d: %w", c.ID, c.Members(), n, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// runAll runs every role in this process, on an embedded NATS server.
func runAll(ctx context.Context, f flags, cfg scenario.Config, stdout io.Writer) error {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(stdout, "[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats-server did not start")
	}
	cfg.NATSURL = ns.ClientURL()
	say("embedded nats-server at %s", cfg.NATSURL)

	dir := f.data
	if dir == "" {
		if dir, err = os.MkdirTemp("", "protosynod-example-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	for _, id := range cfg.Acceptors {
		t := time.Now()
		a, err := scenario.StartAcceptor(ctx, cfg, id, filepath.Join(dir, id))
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.Close(sctx)
		}()
		say("acceptor %s on Pebble in %s (%v)", id, filepath.Join(dir, id), time.Since(t).Round(time.Millisecond))
	}
	var members []*scenario.Node
	for i := range 3 {
		t := time.Now()
		m, err := scenario.StartMember(ctx, cfg, fmt.Sprintf("m%d", i+1))
		if err != nil {
			return err
		}
		members = append(members, m)
		say("member %s at %s joined (%v)", m.ID, m.Address(), time.Since(t).Round(time.Millisecond))
	}
	crashed := map[*scenario.Node]bool{}
	defer func() {
		for _, m := range members {
			if !crashed[m] {
				m.Stop()
			}
		}
	}()
	t := time.Now()
	c, err := scenario.StartClient(ctx, cfg, "c1")
	if err != nil {
		return err
	}
	defer c.Stop()
	if err := waitMembers(ctx, c, len(members)); err != nil {
		return err
	}
	say("client c1 at %s sees %d members (%v)", c.Address(), c.Members(), time.Since(t).Round(time.Millisecond))

	rep, err := scenario.Run(ctx, scenario.Env{Client: c, Members: members, Out: stdout, Seed: f.seed, Start: start})
	for _, m := range members {
		if m.ID == rep.Crashed {
			crashed[m] = true
		}
	}
	if err != nil {
		return err
	}
	say("done in %v; failover of %s took %v", time.Since(start).Round(time.Millisecond), rep.Crashed, rep.Failover.Round(time.Millisecond))
	if f.metrics != "" {
		say("metrics stay at http://%s/metrics until Ctrl-C", f.metrics)
		<-ctx.Done()
	}
	return nil
}
