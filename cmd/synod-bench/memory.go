package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// memoryLimit is issue 14's bound on an acceptor's RSS holding 1,000,000
// registers of 1 KiB.
const memoryLimit = 256 << 20

// fillWorkers is how many requests the memory mode keeps in flight; the
// transport packs them into frames of up to natstransport.MaxFrameItems.
const fillWorkers = 512

// drive runs do for the indexes 0..total-1 from fillWorkers goroutines,
// counting successes in done and failures in errs, sampling the RSS of pid
// every second into peak and reporting progress every 5 seconds. It
// returns how long it took.
func drive(ctx context.Context, progress io.Writer, what string, total int64, pid int, done, errs *atomic.Int64,
	firstErr *atomic.Value, peak *atomic.Int64, do func(rng *rand.Rand, k int64) error, seed uint64) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range fillWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= total {
					return
				}
				if err := do(rng, k); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				done.Add(1)
			}
		}()
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rss := procStatus(pid, "VmRSS")
			peak.Store(max(peak.Load(), rss))
			if time.Since(last) >= 5*time.Second {
				last = time.Now()
				n := done.Load()
				fmt.Fprintf(progress, "synod-bench: %s %d/%d registers (%.0f/s), acceptor RSS %s, %d errors\n",
					what, n, total, float64(n)/time.Since(t0).Seconds(), mib(rss), errs.Load())
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	<-sampled
	return elapsed
}

// memoryResult is the memory mode's -json line.
type memoryResult struct {
	Layout           string  `json:"layout"`
	Mode             string  `json:"mode"`
	Registers        int64   `json:"registers"`
	ValueBytes       int     `json:"value_bytes"`
	FillSeconds      float64 `json:"fill_seconds"`
	RSSBytes         int64   `json:"rss_bytes"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	DiskBytes        int64   `json:"disk_bytes"`
	DiskPerRegister  float64 `json:"disk_bytes_per_register"`
	RSSUnderLimit    bool    `json:"rss_under_256mib"`
	ErrorsDuringFill int64   `json:"errors"`
	Reads            int64   `json:"reads"`
	ReadSeconds      float64 `json:"read_seconds"`
	ReadErrors       int64   `json:"read_errors"`
}

// memoryMode fills one synod-acceptor process with c.registers registers of
// c.sizes[0] bytes, accepted at one ballot (the second phase of a round,
// which is what stores a value), and reports the process's RSS and the
// bytes its data directory holds.
func memoryMode(ctx context.Context, w, progress io.Writer, c config) error {
	if c.natsURL != "" {
		return errors.New("-memory starts its own acceptor process; it does not take -nats")
	}
	valueBytes := c.sizes[0]
	log := slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := deploySettings{layout: layoutProcesses, servers: 1, natsBin: c.natsBin, acceptorBin: c.acceptorBin, pprof: true, noJetStream: true}
	fmt.Fprintf(progress, "synod-bench: memory mode: one acceptor process, %d registers of %d bytes\n", c.registers, valueBytes)
	dep, err := deploy(ctx, s, "", log)
	if err != nil {
		return err
	}
	defer dep.close()
	pid := dep.accProcs[0].Pid()

	nc, err := nats.Connect(dep.urls[0], nats.Name("bench-fill"))
	if err != nil {
		return err
	}
	defer nc.Close()
	tr, err := natstransport.NewTransport(nc, dep.cluster)
	if err != nil {
		return err
	}
	defer tr.Close()

	var (
		done, errs atomic.Int64
		firstErr   atomic.Value
		peak       atomic.Int64
	)
	ballot := synod.Ballot{Counter: 1, Proposer: "bench-fill"}
	to := []string{dep.acceptors[0]}
	key := func(k int64) string { return fmt.Sprintf("mem/%08d", k) }
	// Fill: one accept per register.
	fill := drive(ctx, progress, "filled", int64(c.registers), pid, &done, &errs, &firstErr, &peak, func(rng *rand.Rand, k int64) error {
		// Random values: Pebble compresses blocks, and equal values would
		// make the disk figure meaningless.
		v := make([]byte, valueBytes)
		for j := 0; j+8 <= len(v); j += 8 {
			binary.LittleEndian.PutUint64(v[j:], rng.Uint64())
		}
		replies := make(chan synod.AcceptReply, 1)
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := tr.Accept(rctx, to, synod.AcceptRequest{Key: key(k), Ballot: ballot, Value: v}, replies); err != nil {
			return err
		}
		select {
		case r := <-replies:
			switch {
			case r.Err != nil:
				return r.Err
			case !r.OK:
				return fmt.Errorf("refused: seen %v", r.Seen)
			}
			return nil
		case <-rctx.Done():
			return rctx.Err()
		}
	}, c.seed)
	n := done.Load()
	fillErrs := errs.Load()
	// Then read a tenth of the registers at random, as actors activating
	// would: reads go through Pebble's block cache and iterators.
	reads := max(int64(c.registers)/10, 1)
	var readDone atomic.Int64
	readTime := drive(ctx, progress, "read", reads, pid, &readDone, &errs, &firstErr, &peak, func(rng *rand.Rand, _ int64) error {
		replies := make(chan synod.ReadReply, 1)
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		want := key(rng.Int64N(max(n, 1)))
		if err := tr.Read(rctx, to, synod.ReadRequest{Key: want}, replies); err != nil {
			return err
		}
		select {
		case r := <-replies:
			switch {
			case r.Err != nil:
				return r.Err
			case len(r.Value) != valueBytes:
				return fmt.Errorf("read %s: %d bytes, want %d", want, len(r.Value), valueBytes)
			}
			return nil
		case <-rctx.Done():
			return rctx.Err()
		}
	}, c.seed+1)
	fmt.Fprintf(progress, "synod-bench: read %d random registers in %v\n", readDone.Load(), readTime.Round(time.Millisecond))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if e, ok := firstErr.Load().(error); ok {
		fmt.Fprintf(progress, "synod-bench: %d accepts failed, first: %v\n", errs.Load(), e)
	}
	// Let the acceptor settle (flushes, compactions) before measuring.
	time.Sleep(2 * time.Second)
	rss := procStatus(pid, "VmRSS")
	hwm := procStatus(pid, "VmHWM")
	if c.profileDir != "" {
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return err
		}
		file := filepath.Join(c.profileDir, "memory-acceptor-heap.pprof")
		if err := fetchURL(ctx, dep.pprof[len(dep.pprof)-1].url+"/debug/pprof/heap", file); err != nil {
			fmt.Fprintf(progress, "synod-bench: heap profile: %v\n", err)
		} else {
			fmt.Fprintf(progress, "synod-bench: heap profile of the acceptor in %s\n", file)
		}
	}
	disk, err := dirBytes(dep.dataDirs[0])
	if err != nil {
		return err
	}
	res := memoryResult{
		Layout: dep.layout, Mode: "memory", Registers: n, ValueBytes: valueBytes, FillSeconds: fill.Seconds(),
		RSSBytes: rss, PeakRSSBytes: max(hwm, peak.Load()), DiskBytes: disk,
		RSSUnderLimit: max(hwm, peak.Load()) < memoryLimit, ErrorsDuringFill: fillErrs,
		Reads: readDone.Load(), ReadSeconds: readTime.Seconds(), ReadErrors: errs.Load() - fillErrs,
	}
	if n > 0 {
		res.DiskPerRegister = float64(disk) / float64(n)
	}
	if c.json {
		return json.NewEncoder(w).Encode(res)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "registers\tvalue bytes\tfill\tregisters/s\treads\treads/s\tRSS after\tpeak RSS\tdisk\tdisk/register\tpeak < 256 MiB\t\n")
	fmt.Fprintf(tw, "%d\t%d\t%v\t%.0f\t%d\t%.0f\t%s\t%s\t%s\t%.0f B\t%v\t\n", n, valueBytes, fill.Round(time.Millisecond),
		float64(n)/fill.Seconds(), res.Reads, float64(res.Reads)/readTime.Seconds(), mib(rss), mib(res.PeakRSSBytes), mib(disk),
		res.DiskPerRegister, res.RSSUnderLimit)
	return tw.Flush()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// dirBytes returns the bytes of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
