package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestSmokeJSON runs every workload for a fraction of a second in the
// embedded layout and checks that each output line is a JSON result of a
// known system. It asserts nothing about timing.
func TestSmokeJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	// No deadline: with none, each JetStream API call gets the client's own
	// timeout, which the bench's wait for a meta leader relies on.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	if err := bench(ctx, &out, config{d: 200 * time.Millisecond, valueSize: 100, servers: 3, seed: 1, json: true}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r jsonResult
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.Layout != "embedded" || r.ValueBytes != 100 || r.Workload == "" ||
			!(strings.HasPrefix(r.System, "protosynod") || strings.HasPrefix(r.System, "jetstream")) {
			t.Errorf("result %+v", r)
		}
		seen[r.Workload+"/"+r.System] = true
	}
	if len(seen) != 6 {
		t.Errorf("got results for %v, want 3 workloads x 2 systems", seen)
	}
}
