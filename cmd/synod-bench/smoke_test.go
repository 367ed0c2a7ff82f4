package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/procs"
)

// TestSmokeJSON runs every workload for a fraction of a second in each
// layout and checks that each output line is a JSON result of a known
// system. It asserts nothing about timing.
func TestSmokeJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3-server NATS clusters (and, in the process layout, builds nats-server and synod-acceptor)")
	}
	bins := procs.NewBinaries()
	defer bins.Close()
	for _, layout := range []string{layoutEmbedded, layoutProcesses} {
		t.Run(layout, func(t *testing.T) {
			// No deadline: with none, each JetStream API call gets the
			// client's own timeout, which the bench's wait for a meta
			// leader relies on.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out bytes.Buffer
			c := config{layout: layout, d: 100 * time.Millisecond, sizes: []int{100, 1024}, servers: 3, seed: 1, json: true,
				thrifty: true, clients: 1}
			if layout == layoutProcesses {
				c.natsBin, c.acceptorBin = testBinaries(t, bins)
			} else {
				// The flags' other settings: more connections, every acceptor asked.
				c.thrifty, c.clients = false, 2
			}
			if err := bench(ctx, &out, io.Discard, c); err != nil {
				t.Fatal(err)
			}
			checkJSON(t, &out, layout, c)
		})
	}
	t.Run("memory", func(t *testing.T) {
		natsBin, accBin := testBinaries(t, bins)
		var out bytes.Buffer
		c := config{layout: layoutProcesses, natsBin: natsBin, acceptorBin: accBin, sizes: []int{1024}, registers: 2000, seed: 1, json: true}
		if err := memoryMode(t.Context(), &out, io.Discard, c); err != nil {
			t.Fatal(err)
		}
		var r memoryResult
		dec := json.NewDecoder(&out)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%q: %v", out.String(), err)
		}
		if r.Mode != "memory" || r.Registers != 2000 || r.ValueBytes != 1024 || r.RSSBytes <= 0 || r.DiskBytes <= 0 || r.ErrorsDuringFill != 0 {
			t.Errorf("result %+v", r)
		}
		if dec.More() {
			t.Error("more than one JSON value")
		}
	})
}

// testBinaries returns the nats-server and synod-acceptor binaries, built
// once per test binary run.
func testBinaries(t *testing.T, bins *procs.Binaries) (natsBin, accBin string) {
	t.Helper()
	natsBin, accBin, err := buildBinaries(t.Context(), bins)
	if err != nil {
		t.Fatal(err)
	}
	return natsBin, accBin
}

// checkJSON strictly decodes every line of out and checks that every step
// of c has a result from each of its two systems.
func checkJSON(t *testing.T, out *bytes.Buffer, layout string, c config) {
	t.Helper()
	seen := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var r jsonResult
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if dec.More() {
			t.Fatalf("line %q holds more than one value", sc.Text())
		}
		if r.Layout != layout || r.Workload == "" || r.OKPerSec < 0 || r.P50us < 0 || r.P99us < r.P50us ||
			!(strings.HasPrefix(r.System, "protosynod") || strings.HasPrefix(r.System, "jetstream")) {
			t.Errorf("result %+v", r)
		}
		seen[fmt.Sprintf("%s/%s/%d", r.Workload, r.System, r.ValueBytes)] = true
	}
	if want := 2 * len(c.steps()); len(seen) != want {
		t.Errorf("got %d distinct results %v, want %d (2 systems per step)", len(seen), seen, want)
	}
}
