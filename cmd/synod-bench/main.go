// Command synod-bench measures protosynod registers side by side with NATS
// JetStream KV compare-and-set in one run, on the same embedded NATS cluster,
// with the same durability (every write fsynced before it is acknowledged) and
// the same value size, and prints the figures and their ratios.
//
// Usage:
//
//	go run ./cmd/synod-bench [-duration 5s] [-value-size 100] [-servers 3]
//
// Workloads, after DESIGN.md §8 and BASELINES.md:
//   - sequential: one worker, one key (protosynod's one-round-trip path);
//   - many-keys:  1,000 keys, 64 in flight;
//   - hot-key:    one key, 64 writers (JetStream counts lost CAS races as
//     conflicts; protosynod retries them inside the change).
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
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	var (
		duration  = flag.Duration("duration", 5*time.Second, "how long each workload runs per system")
		valueSize = flag.Int("value-size", 100, "value size in bytes")
		servers   = flag.Int("servers", 3, "nats-servers in the cluster (JetStream replicas and acceptors)")
		only      = flag.String("only", "", "comma-separated workloads to run (sequential,many-keys,hot-key); empty runs all")
		seed      = flag.Uint64("seed", uint64(time.Now().UnixNano()), "seed for key choice")
		cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		mutexprof = flag.String("mutexprofile", "", "write a mutex contention profile of the whole run to this file")
		blockprof = flag.String("blockprofile", "", "write a blocking profile of the whole run to this file")
		jsonOut   = flag.Bool("json", false, "print one JSON object per workload and system instead of the table")
	)
	flag.Parse()
	if *mutexprof != "" {
		runtime.SetMutexProfileFraction(5)
		defer writeProfile("mutex", *mutexprof)
	}
	if *blockprof != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond))
		defer writeProfile("block", *blockprof)
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "synod-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	out := config{d: *duration, valueSize: *valueSize, servers: *servers, only: *only, seed: *seed, json: *jsonOut}
	if err := bench(ctx, os.Stdout, out); err != nil {
		fmt.Fprintln(os.Stderr, "synod-bench:", err)
		stop()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// config is one run's settings.
type config struct {
	d                  time.Duration
	valueSize, servers int
	only               string
	seed               uint64
	json               bool // one JSON object per line (see jsonResult) instead of the table
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

func bench(ctx context.Context, w io.Writer, c config) error {
	d, valueSize, servers, only, seed := c.d, c.valueSize, c.servers, c.only, c.seed
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	dir, err := os.MkdirTemp("", "synod-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log.Info("starting embedded NATS cluster", "servers", servers, "dir", dir, "seed", seed)
	nc, err := startNATSCluster(servers, dir)
	if err != nil {
		return err
	}
	defer nc.shutdown()

	js, err := newJSKV(ctx, nc, servers)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	defer js.close()
	engines := []engine{js}
	sy, err := newSynodEngine(ctx, nc, dir, log)
	_ = sy
	if err != nil {
		return fmt.Errorf("protosynod: %w", err)
	}
	defer sy.close()
	engines = append(engines, sy)

	workloads := []workload{
		{name: "sequential", keys: 1, inflight: 1},
		{name: "many-keys", keys: 1000, inflight: 64},
		{name: "hot-key", keys: 1, inflight: 64},
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	enc := json.NewEncoder(w)
	if !c.json {
		fmt.Fprintf(tw, "workload\tsystem\tok/s\tp50\tp99\tconflicts\terrors\tratio\t\n")
	}
	for _, w := range workloads {
		if only != "" && !strings.Contains(","+only+",", ","+w.name+",") {
			continue
		}
		var base float64
		for i, e := range engines {
			log.Info("running", "workload", w.name, "system", e.name(), "duration", d)
			r := run(ctx, e, w, d, valueSize, seed)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.firstErr != nil {
				log.Warn("operations failed", "workload", w.name, "system", e.name(), "count", r.errs, "first", r.firstErr)
			}
			ratio := "1.00x"
			if i == 0 {
				base = r.rate()
			} else if base > 0 {
				ratio = fmt.Sprintf("%.2fx", r.rate()/base)
			}
			if c.json {
				if err := enc.Encode(jsonResult{
					Layout: "embedded", Workload: w.name, System: e.name(), ValueBytes: valueSize, OKPerSec: r.rate(),
					P50us: r.pct(0.50).Microseconds(), P99us: r.pct(0.99).Microseconds(), Conflicts: r.conflicts, Errors: r.errs,
				}); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%v\t%v\t%d\t%d\t%s\t\n", w.name, e.name(), r.rate(),
				r.pct(0.50).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.conflicts, r.errs, ratio)
		}
	}
	if c.json {
		return nil
	}
	fmt.Fprintf(w, "\nsystems side by side, %v each, %d-byte values, %d nats-servers, fsync before every acknowledgement; ratio = ok/s over jetstream-kv\n", d, valueSize, servers)
	return tw.Flush()
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
