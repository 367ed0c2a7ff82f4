// Command synod is the protosynod command-line client: it lists the
// acceptors serving on a NATS system and reads and writes registers through
// full CASPaxos rounds.
//
// Usage:
//
//	synod [connection flags] acceptors
//	synod [connection flags] -cluster NAME -acceptors a1,a2,a3 read KEY
//	synod [connection flags] -cluster NAME -acceptors a1,a2,a3 write KEY VALUE
//
// read is linearizable: it runs a round (the identity change), so it reflects
// every change that completed before it started. write replaces the value
// whatever it was. Both need the full acceptor set: quorums computed from the
// acceptors that happen to answer discovery need not intersect the real ones,
// so the set is never guessed. Every flag can also be set through its
// environment variable (SYNOD_NATS, SYNOD_CLUSTER, SYNOD_ACCEPTORS, ...).
//
// Exit status: 0 on success, 1 on failure, 2 on a usage error, 3 when a write's
// outcome is indeterminate (it may or may not have been applied).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/internal/cliflags"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	case errors.Is(err, synod.ErrIndeterminate):
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(3)
	default:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

type config struct {
	conn                       cliflags.NATS
	cluster, prefix, acceptors string
	timeout                    time.Duration
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (config, []string, error) {
	var c config
	fs := flag.NewFlagSet("synod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.conn.Register(fs)
	fs.StringVar(&c.cluster, "cluster", "", "acceptor cluster name (read, write; filters acceptors)")
	fs.StringVar(&c.prefix, "prefix", natstransport.DefaultPrefix, "subject prefix")
	fs.StringVar(&c.acceptors, "acceptors", "", "the cluster's full acceptor set, comma-separated (read, write)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "deadline of the command")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage:\n  synod [flags] acceptors\n  synod [flags] read KEY\n  synod [flags] write KEY VALUE\n\nFlags (environment variable in brackets):\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(stderr, "  -%s [%s]\n    \t%s (default %q)\n", f.Name, cliflags.EnvName(f.Name), f.Usage, f.DefValue)
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, nil, err
		}
		return c, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := cliflags.FillFromEnv(fs, getenv); err != nil {
		return c, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return c, nil, fmt.Errorf("%w: missing command (acceptors, read or write)", errUsage)
	}
	return c, fs.Args(), nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, cmd, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	switch {
	case cmd[0] == "acceptors" && len(cmd) == 1:
	case cmd[0] == "read" && len(cmd) == 2, cmd[0] == "write" && len(cmd) == 3:
		if c.cluster == "" || c.acceptors == "" {
			return fmt.Errorf("%w: %s needs -cluster and -acceptors (the full acceptor set; see 'synod acceptors')", errUsage, cmd[0])
		}
	default:
		return fmt.Errorf("%w: unknown command or wrong arguments: %q", errUsage, cmd)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	nc, err := connect(c)
	if err != nil {
		return err
	}
	defer nc.Close()
	if cmd[0] == "acceptors" {
		return listAcceptors(ctx, nc, c, stdout)
	}
	tr, err := natstransport.NewTransport(nc, c.cluster, natstransport.WithPrefix(c.prefix))
	if err != nil {
		return err
	}
	defer tr.Close()
	cfg := synod.Config{Acceptors: strings.Split(c.acceptors, ",")}
	cl, err := synod.NewClient(synod.RandomProposerID("synod-cli"), cfg, tr)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	key := cmd[1]
	if cmd[0] == "read" {
		v, err := cl.Read(ctx, key)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, format(v))
		return err
	}
	value := []byte(cmd[2])
	if _, err := cl.Change(ctx, key, func([]byte) ([]byte, error) { return value, nil }); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s = %s\n", key, format(value))
	return err
}

// format prints a value as text when it is printable UTF-8, quoted otherwise.
func format(v []byte) string {
	switch {
	case v == nil:
		return "(empty register)"
	case utf8.Valid(v) && !slices.ContainsFunc([]rune(string(v)), func(r rune) bool { return !strconv.IsPrint(r) }):
		return string(v)
	}
	return strconv.Quote(string(v))
}

func connect(c config) (*nats.Conn, error) {
	opts, err := c.conn.Options()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	nc, err := nats.Connect(c.conn.URLs, append(opts, nats.Name("synod-cli"))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", c.conn.URLs, err)
	}
	return nc, nil
}

// listAcceptors asks every synod-acceptor micro service for its info and
// stats, gathering answers for a short while, and prints them sorted.
func listAcceptors(ctx context.Context, nc *nats.Conn, c config, out io.Writer) error {
	infos, err := gather[micro.Info](ctx, nc, micro.InfoVerb)
	if err != nil {
		return err
	}
	stats, err := gather[micro.Stats](ctx, nc, micro.StatsVerb)
	if err != nil {
		return err
	}
	handled := map[string]int{}
	for _, s := range stats {
		for _, e := range s.Endpoints {
			handled[s.ID] += e.NumRequests
		}
	}
	slices.SortFunc(infos, func(a, b micro.Info) int {
		return strings.Compare(a.Metadata[natstransport.MetadataCluster]+"/"+a.Metadata[natstransport.MetadataAcceptor],
			b.Metadata[natstransport.MetadataCluster]+"/"+b.Metadata[natstransport.MetadataAcceptor])
	})
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tACCEPTOR\tPREFIX\tVERSION\tREQUESTS\tSERVICE ID")
	n := 0
	for _, in := range infos {
		cl := in.Metadata[natstransport.MetadataCluster]
		if c.cluster != "" && cl != c.cluster {
			continue
		}
		n++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", cl, in.Metadata[natstransport.MetadataAcceptor],
			in.Metadata[natstransport.MetadataPrefix], in.Version, handled[in.ID], in.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no %s services answered on %s", natstransport.ServiceName, nc.ConnectedUrlRedacted())
	}
	return nil
}

// gather sends a micro discovery request for verb and collects the answers
// that arrive within half a second (or until ctx ends).
func gather[T any](ctx context.Context, nc *nats.Conn, verb micro.Verb) ([]T, error) {
	subject, err := micro.ControlSubject(verb, natstransport.ServiceName, "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var out []T
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return out, nil // the gathering window closed
		}
		var v T
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			return nil, fmt.Errorf("%s reply from a %s service: %w", verb, natstransport.ServiceName, err)
		}
		out = append(out, v)
	}
}
