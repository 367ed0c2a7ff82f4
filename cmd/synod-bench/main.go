// Command synod-bench measures protosynod side by side with NATS JetStream
// KV in one run, with the same durability (every write fsynced before it is
// acknowledged: JetStream KV R3 with sync_interval always, acceptors on
// Pebble with synced commits) and the same value sizes, and prints the
// figures and their ratios.
//
// Usage:
//
//	go run ./cmd/synod-bench [-layout embedded|processes] [-quick] [-json]
//	go run ./cmd/synod-bench -nats nats://h1:4222,nats://h2:4222 [-cluster NAME] [-acceptors a0,a1,a2]
//	go run ./cmd/synod-bench -memory -registers 1000000 -value-bytes 1024
//
// Layouts:
//   - embedded (default): three nats-servers and three acceptors inside the
//     bench process;
//   - processes: three nats-server processes in a cluster (the version pinned
//     in go.mod, built with the go command), JetStream on the same servers,
//     three synod-acceptor processes built from this module; the load comes
//     from the bench process, as in production;
//   - -nats URL: an existing cluster, with the acceptors of -cluster found
//     by micro discovery or given with -acceptors, and a JetStream KV bucket
//     "synod_bench" with -js-replicas replicas. The comparison is fair only if
//     those servers run JetStream with sync_interval: always.
//
// Workloads, after DESIGN.md §8 and BASELINES.md, at every -value-bytes size
// (100 and 1024 by default; the actor workloads at the first size):
//   - sequential: one worker, one key (protosynod's one-round-trip path);
//   - many-keys: 1,000 keys, 64 in flight;
//   - hot-key: one key, 64 writers (JetStream counts lost CAS races as
//     conflicts; protosynod retries them inside the change);
//   - actors-many: 1,000 protoactor actors, 64 messages in flight;
//   - actor-hot: one actor, 64 senders.
//
// The actor workloads run one counter handler in protosynod actors (package
// actors, mailbox batching) and in plain protoactor actors that Get their
// state from JetStream KV and Update it with the revision read (retrying on a
// conflict), one message at a time.
//
// Output: a progress line per run on stderr (with, in the process layout,
// each process's CPU time per operation), then the table with ratios; with
// -json one object per line instead of the table. -quick runs everything
// for 2 s each (under two minutes including start-up). -profile-dir DIR
// writes a CPU profile of every process (bench, nats-servers, acceptors) for
// every run.
//
// -memory fills one synod-acceptor process (on its own nats-server) with
// -registers registers of the first -value-bytes size and reports its RSS
// and the disk bytes per register.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	var (
		c         config
		sizes     string
		acceptors string
		cpuprof   string
		mutexprof string
		blockprof string
		nearness  bool
	)
	flag.BoolVar(&c.thrifty, "thrifty", true, "protosynod proposers send each phase to a quorum-sized subset first (synod.WithThrifty, the default); -thrifty=false sends it to every acceptor")
	flag.BoolVar(&nearness, "nearness", true, "protosynod transports rank the acceptors by measured distance and thrifty subsets fill from the nearest (natstransport.WithNearness, the default); -nearness=false picks subsets by proposer ID alone")
	flag.IntVar(&c.clients, "clients", 1, "NATS connections per system, spread over the nats-servers: protosynod proposer clients (one connection each) and JetStream KV connections")
	flag.StringVar(&c.layout, "layout", layoutEmbedded, "embedded (servers and acceptors in this process) or processes (nats-server and synod-acceptor processes)")
	flag.StringVar(&c.natsURL, "nats", "", "run against an existing NATS cluster at these URLs (comma-separated) instead of starting one")
	flag.StringVar(&c.cluster, "cluster", benchCluster, "with -nats: the synod cluster name")
	flag.StringVar(&acceptors, "acceptors", "", "with -nats: the acceptor IDs (comma-separated); empty: discover them")
	flag.IntVar(&c.replicas, "js-replicas", 3, "with -nats: JetStream KV replicas")
	flag.StringVar(&c.natsBin, "nats-server-bin", "", "processes layout: the nats-server binary (default: build the version pinned in go.mod)")
	flag.StringVar(&c.acceptorBin, "acceptor-bin", "", "processes layout: the synod-acceptor binary (default: build ./cmd/synod-acceptor)")
	flag.DurationVar(&c.d, "duration", 5*time.Second, "how long each workload runs per system")
	flag.BoolVar(&c.quick, "quick", false, "run every workload for 2s (unless -duration is given): everything in under two minutes")
	flag.StringVar(&sizes, "value-bytes", "100,1024", "value sizes in bytes, comma-separated; every raw workload runs at each")
	flag.IntVar(&c.servers, "servers", 3, "nats-servers and acceptors to start (JetStream replicas)")
	flag.StringVar(&c.only, "only", "", "comma-separated workloads to run ("+workloadNames()+"); empty runs all")
	flag.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "seed for key choice")
	flag.BoolVar(&c.json, "json", false, "print one JSON object per workload and system instead of the table")
	flag.StringVar(&c.profileDir, "profile-dir", "", "write a CPU profile of every process for every run into this directory")
	flag.BoolVar(&c.memory, "memory", false, "memory mode: fill one acceptor process with -registers registers and report RSS and disk bytes")
	flag.IntVar(&c.registers, "registers", 1_000_000, "memory mode: registers to fill")
	flag.StringVar(&cpuprof, "cpuprofile", "", "write a CPU profile of the bench process for the whole run to this file")
	flag.StringVar(&mutexprof, "mutexprofile", "", "write a mutex contention profile of the bench process to this file")
	flag.StringVar(&blockprof, "blockprofile", "", "write a blocking profile of the bench process to this file")
	flag.Parse()
	c.noNearness = !nearness
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "duration" {
			c.durationSet = true
		}
	})
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "synod-bench: -value-bytes: bad size %q\n", s)
			os.Exit(2)
		}
		c.sizes = append(c.sizes, n)
	}
	if acceptors != "" {
		c.acceptorIDs = strings.Split(acceptors, ",")
	}
	if c.clients < 1 {
		fmt.Fprintf(os.Stderr, "synod-bench: -clients %d: need at least one connection per system\n", c.clients)
		os.Exit(2)
	}
	if cpuprof != "" && c.profileDir != "" {
		fmt.Fprintln(os.Stderr, "synod-bench: -cpuprofile and -profile-dir both profile the bench process; give one")
		os.Exit(2)
	}
	if mutexprof != "" {
		runtime.SetMutexProfileFraction(5)
		defer writeProfile("mutex", mutexprof)
	}
	if blockprof != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond))
		defer writeProfile("block", blockprof)
	}
	if cpuprof != "" {
		f, err := os.Create(cpuprof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "synod-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if c.memory {
		err = memoryMode(ctx, os.Stdout, os.Stderr, c)
	} else {
		err = bench(ctx, os.Stdout, os.Stderr, c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "synod-bench:", err)
		stop()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// config is one run's settings.
type config struct {
	thrifty              bool // synod.WithThrifty for the proposers
	noNearness           bool // natstransport.WithNearness(0) for the proposers' transports
	clients              int  // connections (and proposer clients) per system
	layout               string
	natsURL, cluster     string
	acceptorIDs          []string
	replicas             int
	natsBin, acceptorBin string
	d                    time.Duration
	durationSet, quick   bool
	sizes                []int
	servers              int
	only                 string
	seed                 uint64
	json                 bool // one JSON object per line (see jsonResult) instead of the table
	profileDir           string
	memory               bool
	registers            int
}

// quickDuration is each run's duration with -quick.
const quickDuration = 2 * time.Second

func (c config) duration() time.Duration {
	if c.quick && !c.durationSet {
		return quickDuration
	}
	return c.d
}

func (c config) deploySettings() deploySettings {
	s := deploySettings{layout: c.layout, servers: c.servers, natsBin: c.natsBin, acceptorBin: c.acceptorBin, pprof: c.profileDir != ""}
	if c.natsURL != "" {
		s.layout, s.natsURL, s.cluster, s.acceptorIDs, s.replicas = layoutExternal, c.natsURL, c.cluster, c.acceptorIDs, c.replicas
	}
	return s
}

func workloadNames() string {
	var names []string
	for _, w := range workloads {
		names = append(names, w.name)
	}
	return strings.Join(names, ",")
}

// jsonResult is one line of -json output.
type jsonResult struct {
	Layout     string  `json:"layout"`
	Workload   string  `json:"workload"`
	System     string  `json:"system"`
	ValueBytes int     `json:"value_bytes"`
	OKPerSec   float64 `json:"ok_per_sec"`
	P50us      int64   `json:"p50_us"`
	P99us      int64   `json:"p99_us"`
	Conflicts  int64   `json:"conflicts"`
	Errors     int64   `json:"errors"`
}

// step is one workload at one value size, run on a pair of engines.
type step struct {
	w          workload
	valueBytes int
}

func (c config) steps() []step {
	var out []step
	for _, w := range workloads {
		if c.only != "" && !strings.Contains(","+c.only+",", ","+w.name+",") {
			continue
		}
		for i, size := range c.sizes {
			if w.actors && i > 0 {
				break
			}
			out = append(out, step{w, size})
		}
	}
	return out
}

func bench(ctx context.Context, w, progress io.Writer, c config) error {
	d := c.duration()
	log := slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir, err := os.MkdirTemp("", "synod-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if c.profileDir != "" {
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return err
		}
	}
	t0 := time.Now()
	fmt.Fprintf(progress, "synod-bench: starting the %s layout (seed %d)\n", c.deploySettings().layout, c.seed)
	dep, err := deploy(ctx, c.deploySettings(), dir, log)
	if err != nil {
		return err
	}
	defer dep.close()
	clients := max(c.clients, 1) // a config built in code may leave it zero
	js, err := newJSKV(ctx, dep.urls, dep.replicas, clients)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	defer js.close()
	sy, err := newSynodEngine(dep, c.thrifty, !c.noNearness, clients)
	if err != nil {
		return fmt.Errorf("protosynod: %w", err)
	}
	defer sy.close()
	jsa, sya := newJSActors(js), newSynodActors(sy)
	defer jsa.close()
	defer sya.close()
	fmt.Fprintf(progress, "synod-bench: %s layout ready after %v: acceptors %v on %v\n",
		dep.layout, time.Since(t0).Round(time.Millisecond), dep.acceptors, dep.urls)

	steps := c.steps()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	enc := json.NewEncoder(w)
	if !c.json {
		fmt.Fprintf(tw, "workload\tbytes\tsystem\tok/s\tp50\tp99\tconflicts\terrors\tratio ok/s\tratio p50\t\n")
	}
	cpu := newCPUMeter(dep)
	batches := &batchMeter{urls: dep.metrics}
	for n, s := range steps {
		engines := []engine{js, sy}
		if s.w.actors {
			engines = []engine{jsa, sya}
		}
		var base result
		for i, e := range engines {
			stem := fmt.Sprintf("%s-%d-%s", s.w.name, s.valueBytes, e.name())
			var r result
			before := cpu.sample()
			storageBefore := batches.sample()
			err := profileRun(ctx, dep, c.profileDir, stem, d, func() {
				r = run(ctx, e, s.w, d, s.valueBytes, c.seed)
			})
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(progress, "synod-bench: [%d/%d] %s %dB %s: %.0f ok/s, p50 %v, p99 %v, %d conflicts, %d errors%s\n",
				n+1, len(steps), s.w.name, s.valueBytes, e.name(), r.rate(), r.pct(0.50).Round(time.Microsecond),
				r.pct(0.99).Round(time.Microsecond), r.conflicts, r.errs, cpu.perOp(before, r.ok)+batches.perOp(storageBefore, r.ok))
			if r.firstErr != nil {
				fmt.Fprintf(progress, "synod-bench:   first error: %v\n", r.firstErr)
			}
			ratio, p50ratio := "", ""
			if i == 0 {
				base = r
			} else {
				if base.rate() > 0 {
					ratio = fmt.Sprintf("%.2fx", r.rate()/base.rate())
				}
				if base.pct(0.5) > 0 {
					p50ratio = fmt.Sprintf("%.2fx", float64(r.pct(0.5))/float64(base.pct(0.5)))
				}
			}
			if c.json {
				if err := enc.Encode(jsonResult{
					Layout: dep.layout, Workload: s.w.name, System: e.name(), ValueBytes: s.valueBytes, OKPerSec: r.rate(),
					P50us: r.pct(0.50).Microseconds(), P99us: r.pct(0.99).Microseconds(), Conflicts: r.conflicts, Errors: r.errs,
				}); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%v\t%v\t%d\t%d\t%s\t%s\t\n", s.w.name, s.valueBytes, e.name(), r.rate(),
				r.pct(0.50).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.conflicts, r.errs, ratio, p50ratio)
		}
	}
	fmt.Fprintf(progress, "synod-bench: done in %v\n", time.Since(t0).Round(time.Millisecond))
	if c.json {
		return nil
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\n%s layout, %d nats-servers, %d connection(s) per system%s%s, %v per workload and system, fsync before every acknowledgement; ratios: protosynod over jetstream-kv\n",
		dep.layout, len(dep.urls), clients, map[bool]string{true: "", false: ", thrifty phases off"}[c.thrifty], sy.nearNote(c.noNearness), d)
	return err
}

// profileRun runs run while every process of dep (and, with a directory,
// this one) records a CPU profile into dir.
func profileRun(ctx context.Context, dep *deployment, dir, stem string, d time.Duration, run func()) error {
	if dir == "" {
		run()
		return nil
	}
	f, err := os.Create(filepath.Join(dir, stem+"-bench.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	dep.profile(ctx, dir, stem, int(max(1, d.Round(time.Second)/time.Second)), run)
	pprof.StopCPUProfile()
	return nil
}

// writeProfile writes the named runtime profile to file, reporting failures
// on stderr.
func writeProfile(name, file string) {
	f, err := os.Create(file)
	if err == nil {
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "synod-bench:", name, "profile:", err)
	}
}
