// Command synod-acceptor serves one CASPaxos acceptor over NATS, with its
// state in a Pebble data directory.
//
// One acceptor ID, one process, one data directory: the directory records
// its cluster and acceptor ID on first use and refuses to open under another,
// and the process refuses to start while another instance answers on the
// acceptor's subjects.
//
// Usage:
//
//	synod-acceptor -id a1 -cluster prod -data /var/lib/synod/a1 -nats nats://n1:4222,nats://n2:4222
//
// The acceptor probes its subjects before it opens the data directory: a
// start refused because another instance serves the acceptor ID writes
// nothing, so fixing a mistyped -id on the same fresh -data works.
//
// -pprof ADDR serves Go's profiles at http://ADDR/debug/pprof/ (CPU, heap,
// goroutines), on its own listener.
//
// -metrics ADDR serves OpenTelemetry metrics in Prometheus text format at
// http://ADDR/metrics: request latency, queue depth, refused and malformed
// requests, state cache hits and misses (synod.acceptor.*), synced-commit
// latency and batch sizes (synod.storage.*), and Go runtime and process
// metrics.
//
// -state-cache SIZE (default 32MiB; 0 disables) keeps the state of the
// registers used last in memory, so that requests on them skip the data
// directory's read (see synod.WithStateCache). It holds only what is durable
// and starts empty at every start. A register costs its key, value and
// proposer IDs plus about 200 bytes: 32 MiB hold about 27,000 registers of
// 1 KiB. The process's memory is about 50 MiB plus up to twice the cache
// (Go's garbage collector lets the heap grow to twice what is live).
//
// Every flag can also be set through the environment variable shown in
// -help (SYNOD_ID, SYNOD_CLUSTER, ...); a flag on the command line wins. On
// SIGTERM or SIGINT the acceptor stops taking requests, finishes and answers
// the ones it has taken, closes its storage and exits 0. Shutdown is bounded
// whatever the storage does: requests still unanswered after -drain-timeout
// are abandoned (their callers see no reply, or a 500), closing the storage
// gets 5 more seconds, and then the process exits (1 if it did not drain
// cleanly); a hung disk cannot keep it alive.
//
// # Storage failures and recovery
//
// Run synod-acceptor under a supervisor that restarts it when it exits
// non-zero (systemd Restart=on-failure, a Kubernetes pod, ...): that is how
// it recovers from storage failures, without a person. When its store fails
// (a write-ahead-log write or fsync failed, or a flush or compaction failed,
// for example on a full disk) the acceptor answers the requests it holds
// with error 507 (no space) or 500 (I/O), stops, and exits with status 75
// (EX_TEMPFAIL) within -drain-timeout. It never resumes in the same process:
// a failed Pebble may hold writes in memory that never became durable, so
// only a restart, which reopens the data directory from what is on disk,
// recovers. It is never "alive but useless".
//
// At start it refuses, with status 75 and a message saying why, a data
// directory that is full (less than half of -space-reserve free, and at least
// 1 MiB) and, with status 1, one it cannot write; a supervisor retries until
// space is freed.
//
// -space-reserve (default 64 MiB) keeps the disk from filling up: below it
// the acceptor refuses keys it does not hold yet with 507 (existing keys keep
// working, so actors run on and can be deleted), below half of it every
// write; reads and the register values already stored are served
// throughout, and writes resume by themselves once space is freed. Proposers
// see 507/500 as synod.ErrStorage and fail fast when too few acceptors are
// left for a quorum. Failed requests and Pebble's errors are logged at most
// once per second per cause, with a count; the synod.storage.disk.free,
// .errors, .failures and .refused metrics show the state.
//
// The hidden flag -unsafe-no-fsync (SYNOD_UNSAFE_NO_FSYNC=true) is for tests
// only: it skips every fsync and holds the write-ahead log in process memory,
// so a killed acceptor loses writes it acknowledged. The integration tests use
// it to prove that they detect lost writes.
//
// The hidden flag -test-disk-limit-file FILE is for tests only: the data
// directory then behaves as if it were alone on a filesystem of the size
// written in FILE (a decimal byte count, reread every 20ms; "stall" blocks
// every write and fsync as a hung disk would; no file means no limit). Writes
// beyond the size fail with ENOSPC and the free space reported is the size
// minus the bytes in the directory (package internal/limitfs). Tests use it to
// fill and free a disk without root, which mounting small filesystems needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"

	"github.com/protosynod/protosynod/internal/cliflags"
	"github.com/protosynod/protosynod/internal/limitfs"
	"github.com/protosynod/protosynod/internal/logging"
	"github.com/protosynod/protosynod/internal/promexport"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.Is(err, synod.ErrStorage):
		fmt.Fprintln(os.Stderr, "synod-acceptor:", err)
		os.Exit(exitStorage)
	case err != nil:
		fmt.Fprintln(os.Stderr, "synod-acceptor:", err)
		os.Exit(1)
	}
}

// errUsage marks command-line errors (exit status 2).
var errUsage = errors.New("usage")

// exitStorage is the exit status after a storage failure or a start refused
// for lack of space (EX_TEMPFAIL: restart me later).
const exitStorage = 75

// closeTimeout bounds closing the storage after the drain.
const closeTimeout = 5 * time.Second

// config is the parsed command line.
type config struct {
	id, cluster, prefix, data string
	conn                      cliflags.NATS
	name                      string
	logLevel                  slog.Level
	maxValue                  int
	drainTimeout              time.Duration
	unsafeNoFsync             bool
	metrics                   string
	pprof                     string
	spaceReserve              byteSize
	stateCache                byteSize
	testDiskLimitFile         string
}

// hiddenFlags are left out of -help.
var hiddenFlags = map[string]bool{"unsafe-no-fsync": true, "test-disk-limit-file": true}

// parseConfig reads flags, then fills unset ones from the environment
// (SYNOD_<FLAG NAME>, upper case, '-' as '_').
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("synod-acceptor", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.id, "id", "", "acceptor ID, unique in the cluster (required)")
	fs.StringVar(&c.cluster, "cluster", "", "cluster name (required)")
	fs.StringVar(&c.data, "data", "", "data directory, one per acceptor (required)")
	c.conn.Register(fs)
	fs.StringVar(&c.prefix, "prefix", natstransport.DefaultPrefix, "subject prefix")
	fs.StringVar(&c.name, "name", "", "NATS connection name (default synod-acceptor-<cluster>-<id>)")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.IntVar(&c.maxValue, "max-value", natstransport.DefaultMaxValue, "largest register value in bytes")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "how long to finish in-flight requests on SIGTERM")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (host:port; empty: off)")
	fs.StringVar(&c.pprof, "pprof", "", "serve Go's net/http/pprof profiles at http://ADDR/debug/pprof/ (host:port; empty: off)")
	c.spaceReserve = 64 << 20
	fs.TextVar(&c.spaceReserve, "space-reserve", c.spaceReserve,
		"free disk space below which new keys are refused (half of it: every write), e.g. 64MiB, 1GiB, 0 for none")
	c.stateCache = synod.DefaultStateCache
	fs.TextVar(&c.stateCache, "state-cache", c.stateCache,
		"memory for the state of the registers used last, which then skip the disk read, e.g. 32MiB, 1GiB, 0 for none")
	fs.BoolVar(&c.unsafeNoFsync, "unsafe-no-fsync", false, "TESTS ONLY: skip fsync and lose acknowledged writes when killed")
	fs.StringVar(&c.testDiskLimitFile, "test-disk-limit-file", "", "TESTS ONLY: limit the data directory to the byte count in this file")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: synod-acceptor -id ID -cluster NAME -data DIR [flags]\n\nFlags (environment variable in brackets):\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			fmt.Fprintf(out, "  -%s [%s]\n    \t%s", f.Name, cliflags.EnvName(f.Name), f.Usage)
			if f.DefValue != "" && f.DefValue != "0" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if err := cliflags.FillFromEnv(fs, getenv); err != nil {
		return c, fmt.Errorf("%w: %w", errUsage, err)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"id", c.id}, {"cluster", c.cluster}, {"data", c.data}} {
		if f.v == "" {
			missing = append(missing, "-"+f.name)
		}
	}
	switch {
	case len(missing) > 0:
		return c, fmt.Errorf("%w: missing %s", errUsage, strings.Join(missing, ", "))
	case c.conn.Validate() != nil:
		return c, fmt.Errorf("%w: %w", errUsage, c.conn.Validate())
	case c.maxValue <= 0:
		return c, fmt.Errorf("%w: -max-value must be positive", errUsage)
	case c.drainTimeout <= 0:
		return c, fmt.Errorf("%w: -drain-timeout must be positive", errUsage)
	}
	if c.name == "" {
		c.name = "synod-acceptor-" + c.cluster + "-" + c.id
	}
	return c, nil
}

// natsOptions turns the connection flags into nats.Options.
func natsOptions(c config, log *slog.Logger, closed chan<- struct{}) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(c.name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// nats.go pings every 2 minutes by default: an acceptor on a paused or
		// half-dead server would stay stuck there that long. Two missed pings
		// 2s apart make it reconnect to another server in the cluster.
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			// A deliberate Close also calls this, with a nil error: that is
			// no warning.
			if err != nil {
				log.Warn("nats: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats: reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("nats: async error", "subject", subj, "err", err)
		}),
	}
	conn, err := c.conn.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, conn...)
	return opts, nil
}

// run serves until ctx ends (a signal), then drains. It returns nil after a
// clean drain.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	base := slog.New(logging.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	log := base.With("acceptor", c.id, "cluster", c.cluster)

	var mp metric.MeterProvider
	if c.metrics != "" {
		exp, srv, stop, err := promexport.Serve(c.metrics, log)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("metrics: serving", "url", srv.URL())
		mp = exp.Provider
	}

	if c.pprof != "" {
		addr, stop, err := servePprof(c.pprof)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("pprof: serving", "url", "http://"+addr+"/debug/pprof/")
	}

	closed := make(chan struct{})
	nopts, err := natsOptions(c, log, closed)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(c.conn.URLs, nopts...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", c.conn.URLs, err)
	}
	defer nc.Close()
	log.Info("nats: connected", "url", nc.ConnectedUrlRedacted())

	// Nothing is written to the data directory before the acceptor knows it
	// may serve: a refused start must leave a fresh directory fresh.
	tropts := []natstransport.Option{
		natstransport.WithPrefix(c.prefix),
		natstransport.WithLimits(natstransport.Limits{MaxValue: c.maxValue}),
		natstransport.WithLogger(base),
		natstransport.WithMeterProvider(mp),
	}
	if err := natstransport.Probe(ctx, nc, c.cluster, c.id, tropts...); err != nil {
		return err
	}
	fresh, err := freshDir(c.data)
	if err != nil {
		return err
	}

	storeOpts := []pebblestore.Option{
		pebblestore.WithIdentity(c.cluster, c.id),
		pebblestore.WithLogger(log),
		pebblestore.WithMeterProvider(mp),
	}
	storeOpts = append(storeOpts, pebblestore.WithSpaceReserve(uint64(c.spaceReserve)))
	var dataFS vfs.FS = vfs.Default
	if c.unsafeNoFsync {
		for range 3 {
			log.Warn("UNSAFE: -unsafe-no-fsync is set: fsync is skipped and acknowledged writes are LOST when this process is killed. For tests only.")
		}
		dataFS = noSyncFS{dataFS}
	}
	if c.testDiskLimitFile != "" {
		log.Warn("TEST ONLY: -test-disk-limit-file is set: the data directory is limited to the size written in the file",
			"file", c.testDiskLimitFile)
		dataFS = limitfs.New(dataFS, c.data, limitfs.LimitFile(c.testDiskLimitFile))
	}
	storeOpts = append(storeOpts, pebblestore.WithFS(dataFS))
	store, err := pebblestore.Open(c.data, storeOpts...)
	if err != nil {
		return err
	}
	storeClosed := false
	defer func() {
		if storeClosed {
			return
		}
		if err := closeStore(store); err != nil {
			log.Error("close storage", "err", err)
		}
	}()

	acc := synod.NewAcceptor(c.id, store, synod.WithStateCache(int64(min(c.stateCache, 1<<62))),
		synod.WithAcceptorMeterProvider(mp))
	svc, err := natstransport.Serve(ctx, nc, c.cluster, acc, tropts...)
	if err != nil {
		// Another instance started between the probe and Serve's own probe:
		// give back the directory this run created.
		if fresh {
			storeClosed = true
			if cerr := store.Close(); cerr != nil {
				log.Error("close storage", "err", cerr)
			} else if rerr := emptyDir(c.data); rerr != nil {
				log.Error("could not remove what this refused start wrote", "dir", c.data, "err", rerr)
			}
		}
		return err
	}

	var lost bool
	var failed error
	select {
	case <-ctx.Done():
		log.Info("signal received; draining", "timeout", c.drainTimeout)
	case <-closed:
		lost = true
		log.Error("nats: connection closed; stopping")
	case <-store.Failed():
		failed = store.Err()
		log.Error("storage failed; stopping, to be restarted by the supervisor (exit status 75), which reopens the data directory from disk",
			"err", failed, "timeout", c.drainTimeout)
	}
	dctx, cancel := context.WithTimeout(context.Background(), c.drainTimeout)
	defer cancel()
	stopErr := svc.Stop(dctx)
	storeClosed = true
	closeErr := closeStore(store)
	switch {
	case failed != nil:
		return fmt.Errorf("storage failed: %w", failed)
	case stopErr != nil:
		return fmt.Errorf("drain: %w", stopErr)
	case closeErr != nil:
		return closeErr
	case lost:
		return errors.New("nats connection closed")
	}
	log.Info("stopped cleanly")
	return nil
}

// closeStore closes store, giving up after closeTimeout: a store stuck on a
// hung disk must not keep the process from exiting, and exiting is safe (what
// it did not acknowledge may be lost, what it did is durable).
func closeStore(store *pebblestore.Store) error {
	done := make(chan error, 1)
	go func() { done <- store.Close() }()
	select {
	case err := <-done:
		if err != nil && store.Err() != nil {
			return nil // a failed store is not closed; its failure is reported already
		}
		return err
	case <-time.After(closeTimeout):
		return fmt.Errorf("close storage: still running after %v; exiting without it", closeTimeout)
	}
}

// byteSize is a flag value in bytes, written as a number with an optional
// unit: B, KiB, MiB, GiB, TiB (or K, M, G, T).
type byteSize uint64

// String implements flag.Value.
func (b byteSize) String() string {
	for _, u := range []struct {
		name string
		n    uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if uint64(b) >= u.n && uint64(b)%u.n == 0 {
			return fmt.Sprintf("%d%s", uint64(b)/u.n, u.name)
		}
	}
	return fmt.Sprint(uint64(b))
}

// MarshalText implements encoding.TextMarshaler.
func (b byteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *byteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return fmt.Errorf("size %q: want a number of bytes with an optional unit (KiB, MiB, GiB, TiB)", s)
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KiB": 10, "M": 20, "MiB": 20, "G": 30, "GiB": 30, "T": 40, "TiB": 40}
	sh, ok := shift[unit]
	if !ok || n > (1<<63)>>sh {
		return fmt.Errorf("size %q: want a number of bytes with an optional unit (KiB, MiB, GiB, TiB)", s)
	}
	*b = byteSize(n << sh)
	return nil
}

// freshDir reports whether dir is missing or empty: an acceptor that opens it
// creates everything in it.
func freshDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("data directory: %w", err)
	}
	return len(entries) == 0, nil
}

// emptyDir removes everything in dir, keeping dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
