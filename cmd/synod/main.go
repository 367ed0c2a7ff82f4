// Command synod is the protosynod command-line client: it lists the
// acceptors serving on a NATS system and reads and writes registers through
// full CASPaxos rounds.
//
// Usage:
//
//	synod [flags] acceptors
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 read [-round] KEY
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 write KEY VALUE
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 delete KEY
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 members
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 reconfigure --add a4 | --remove a2 | --replace a2=a4 | --resume
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 gc
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 read KEY -decode
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 inspect KEY
//	synod [flags] -cluster NAME -acceptors a1,a2,a3 keys [-after KEY] [-limit N] PREFIX
//
// read is linearizable: it reflects every change that completed before it
// started. It asks the acceptors for their state, which writes nothing, and
// answers when enough of them agree (synod.Client.Read); otherwise, or with
// -round, it runs a round (the identity change). write replaces the value
// whatever it was. delete writes the register's tombstone, the empty value,
// through a round (synod.Client.Delete): it reads empty afterwards and can be
// written again; the acceptors drop the key at the next garbage collection.
// members shows the membership record (synod.MembershipKey): the current
// configuration and epoch, and a reconfiguration under way. reconfigure
// changes the acceptor set one safe step at a time (synod.Reconfigurer):
// --add a new, empty acceptor, --remove a member, --replace a dead member
// (its disk lost; it must never run again) by a new one, --resume an
// interrupted change; gc removes deleted registers from the acceptors'
// storage. Both report progress on stderr and use the acceptors' admin
// endpoints (NATS permission to publish on <prefix>.<cluster>.*.admin). The
// commands that use registers need the full acceptor set, or any set the
// cluster had since (they adopt the newest configuration its acceptors
// report): quorums computed from the acceptors that happen to answer
// discovery need not intersect the real ones, so the set is never guessed. Every flag can also be set through its
// environment variable (SYNOD_NATS, SYNOD_CLUSTER, SYNOD_ACCEPTORS, ...).
//
// inspect and keys are read-only: they ask each acceptor's inspect endpoint
// (which needs only the NATS permission to publish on
// <prefix>.<cluster>.*.inspect) and change nothing. inspect shows each
// acceptor's promised and accepted ballots and value size side by side and
// flags disagreement: acceptors that lag behind the chosen value, acceptors
// that hold a value no quorum has accepted (an unfinished change), acceptors
// that do not answer. keys lists keys by prefix, a page at a time. read
// -decode renders an actors envelope or a persistence record as JSON.
//
// Every command takes -json (before or after the command name): it then
// prints one JSON document on stdout instead of a table or text.
//
// Exit status: 0 on success, 1 on failure, 2 on a usage error, 3 when a write's
// outcome is indeterminate (it may or may not have been applied).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

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

// config is the global flags, shared by every command.
type config struct {
	conn                       cliflags.NATS
	cluster, prefix, acceptors string
	timeout                    time.Duration
	json                       bool
}

// command is one subcommand. Commands are built fresh for every run (see
// commands), so the variables their flags closures bind are never shared.
type command struct {
	name    string
	args    string // the positional arguments, for the usage text: "KEY VALUE"
	summary string
	// nargs is the number of positional arguments the command takes.
	nargs int
	// needsSet marks commands that need -cluster and -acceptors.
	needsSet bool
	// flags registers the command's own flags; nil when it has none.
	flags func(fs *flag.FlagSet)
	// timeout replaces the -timeout default for commands that run long
	// (reconfigure, gc) when neither the flag nor SYNOD_TIMEOUT sets it.
	timeout time.Duration
	run     func(ctx context.Context, e *env, args []string) error
}

// commands lists every command, in the order the usage text shows them. A new
// command goes in its own file and adds one line here.
func commands() []*command {
	return []*command{
		acceptorsCommand(),
		readCommand(),
		writeCommand(),
		deleteCommand(),
		membersCommand(),
		reconfigureCommand(),
		gcCommand(),
		inspectCommand(),
		keysCommand(),
	}
}

// env is what a command runs with: the global flags, the output and a NATS
// connection made on first use.
type env struct {
	config
	out    *output
	stderr io.Writer
	nc     *nats.Conn
}

// conn connects to NATS once; run closes the connection.
func (e *env) conn() (*nats.Conn, error) {
	if e.nc != nil {
		return e.nc, nil
	}
	opts, err := e.config.conn.Options()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	nc, err := nats.Connect(e.config.conn.URLs, append(opts, nats.Name("synod-cli"))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", e.config.conn.URLs, err)
	}
	e.nc = nc
	return nc, nil
}

// acceptorSet is the -acceptors flag as a list.
func (e *env) acceptorSet() []string { return strings.Split(e.acceptors, ",") }

// client returns a synod Client over NATS for the configured cluster and
// acceptor set, and a function that closes its transport.
func (e *env) client() (*synod.Client, func(), error) {
	cl, _, done, err := e.clientTransport()
	return cl, done, err
}

// clientTransport is client, with the Transport (a synod.Admin too).
func (e *env) clientTransport() (*synod.Client, *natstransport.Transport, func(), error) {
	nc, err := e.conn()
	if err != nil {
		return nil, nil, nil, err
	}
	tr, err := natstransport.NewTransport(nc, e.cluster, natstransport.WithPrefix(e.prefix))
	if err != nil {
		return nil, nil, nil, err
	}
	// An operator's one-off changes go to every acceptor (no thrifty
	// phases): saving a request does not matter here, and inspect then
	// shows no acceptor lagging behind a change just made.
	cl, err := synod.NewClient(synod.RandomProposerID("synod-cli"), synod.Config{Acceptors: e.acceptorSet()}, tr,
		synod.WithConfigSource(tr.DiscoverConfig), synod.WithThrifty(false))
	if err != nil {
		tr.Close()
		return nil, nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return cl, tr, func() { tr.Close() }, nil
}

func registerGlobal(c *config, fs *flag.FlagSet) {
	c.conn.Register(fs)
	fs.StringVar(&c.cluster, "cluster", "", "acceptor cluster name (filters acceptors; needed by commands that use registers)")
	fs.StringVar(&c.prefix, "prefix", natstransport.DefaultPrefix, "subject prefix")
	fs.StringVar(&c.acceptors, "acceptors", "", "the cluster's full acceptor set, comma-separated (commands that use registers)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "deadline of the command")
	fs.BoolVar(&c.json, "json", false, "print one JSON document instead of a table or text")
}

func usage(fs *flag.FlagSet, cmds []*command, stderr io.Writer) func() {
	return func() {
		fmt.Fprint(stderr, "Usage:\n")
		for _, c := range cmds {
			set := ""
			if c.needsSet {
				set = " (needs -cluster and -acceptors)"
			}
			fmt.Fprintf(stderr, "  synod [flags] %s\n    \t%s%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary, set)
		}
		fmt.Fprint(stderr, "\nFlags (environment variable in brackets):\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(stderr, "  -%s [%s]\n    \t%s (default %q)\n", f.Name, cliflags.EnvName(f.Name), f.Usage, f.DefValue)
		})
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	cmds := commands()
	fs := flag.NewFlagSet("synod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerGlobal(&c, fs)
	fs.Usage = usage(fs, cmds, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: missing command (%s)", errUsage, names(cmds))
	}
	var cmd *command
	for _, x := range cmds {
		if x.name == fs.Arg(0) {
			cmd = x
		}
	}
	if cmd == nil {
		return fmt.Errorf("%w: unknown command %q (commands: %s)", errUsage, fs.Arg(0), names(cmds))
	}
	// The command's own flags, plus the global ones again, so that
	// "synod read KEY -json" works as well as "synod -json read KEY".
	cfs := flag.NewFlagSet("synod "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(stderr)
	fs.VisitAll(func(f *flag.Flag) { cfs.Var(f.Value, f.Name, f.Usage) })
	if cmd.flags != nil {
		cmd.flags(cfs)
	}
	cfs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: synod [flags] %s [flags]\n", strings.TrimSpace(cmd.name+" "+cmd.args))
		cfs.PrintDefaults()
	}
	pos, err := parseInterleaved(cfs, fs.Args()[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	// Flags set on either command line win over the environment.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := cliflags.FillFromEnv(cfs, func(k string) string {
		for name := range set {
			if cliflags.EnvName(name) == k {
				return ""
			}
		}
		return getenv(k)
	}); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if len(pos) != cmd.nargs {
		return fmt.Errorf("%w: %s takes %d arguments (%s), got %d: %q", errUsage, cmd.name, cmd.nargs, cmd.args, len(pos), pos)
	}
	if cmd.needsSet && (c.cluster == "" || c.acceptors == "") {
		return fmt.Errorf("%w: %s needs -cluster and -acceptors (the full acceptor set; see 'synod acceptors')", errUsage, cmd.name)
	}
	if cmd.timeout > 0 && !set["timeout"] && getenv(cliflags.EnvName("timeout")) == "" {
		c.timeout = cmd.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	e := &env{config: c, out: &output{w: stdout, json: c.json}, stderr: stderr}
	defer func() {
		if e.nc != nil {
			e.nc.Close()
		}
	}()
	return cmd.run(ctx, e, pos)
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments ("read KEY -decode"), and returns the positional ones.
// "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func names(cmds []*command) string {
	var s []string
	for _, c := range cmds {
		s = append(s, c.name)
	}
	return strings.Join(s, ", ")
}
