package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// A child proposer is this test binary re-executed with childEnv set: it
// writes increasing values to its own keys through its own NATS connection
// and synod.Client, and logs every outcome as a JSON line, until SIGTERM.
const (
	childEnv     = "PROTOSYNOD_IT_CHILD"
	childNATSEnv = "PROTOSYNOD_IT_NATS"
	childAccEnv  = "PROTOSYNOD_IT_ACCEPTORS"
	childOutEnv  = "PROTOSYNOD_IT_OUT"
	childSeedEnv = "PROTOSYNOD_IT_SEED"
	childNameEnv = "PROTOSYNOD_IT_CHILD_NAME" // names the child's keys (default "child")
	childKeys    = 4
	childMaxRun  = 90 * time.Second
)

// childRecord is one line of the child's history.
type childRecord struct {
	Key    string `json:"key"`
	Seq    int    `json:"seq"`
	Status string `json:"status"` // ok, failed, indeterminate
	Err    string `json:"err,omitempty"`
}

// childMain is the child process's main; it returns the exit code.
func childMain() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, childMaxRun)
	defer cancel()
	seed, err := strconv.ParseInt(os.Getenv(childSeedEnv), 10, 64)
	if err != nil {
		return fail(err)
	}
	out, err := os.Create(os.Getenv(childOutEnv))
	if err != nil {
		return fail(err)
	}
	defer out.Close()
	nc, err := nats.Connect(os.Getenv(childNATSEnv), proposerConnOptions("child", nil)...)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	tr, err := natstransport.NewTransport(nc, clusterName)
	if err != nil {
		return fail(err)
	}
	cfg := synod.Config{Acceptors: strings.Split(os.Getenv(childAccEnv), ",")}
	name := os.Getenv(childNameEnv)
	if name == "" {
		name = "child"
	}
	// The child follows membership changes without a restart: stale-epoch
	// refusals carry the new configuration, and DiscoverConfig finds it
	// when every acceptor the child knew is gone.
	c, err := synod.NewClient(synod.RandomProposerID(name), cfg, tr, synod.WithRand(newRand(seed)),
		synod.WithConfigSource(tr.DiscoverConfig))
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(os.Stderr, "child: running")
	defer func() {
		fmt.Fprintf(os.Stderr, "child: final configuration %v\n", c.Config())
	}()
	enc := json.NewEncoder(out)
	for seq := 1; ctx.Err() == nil; seq++ {
		key := fmt.Sprintf("%s-%d", name, seq%childKeys)
		octx, ocancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.Change(octx, key, func([]byte) ([]byte, error) { return []byte(strconv.Itoa(seq)), nil })
		ocancel()
		rec := childRecord{Key: key, Seq: seq, Status: "ok"}
		if err != nil {
			rec.Status, rec.Err = classify(err).String(), err.Error()
		}
		if err := enc.Encode(rec); err != nil {
			return fail(err)
		}
	}
	return 0
}

// childRun is a running child proposer.
type childRun struct {
	proc *harness.Proc
	out  string
}

// startChild starts a child proposer against e and waits until it runs.
func startChild(t *testing.T, e *env, seed int64) *childRun {
	t.Helper()
	return startNamedChild(t, e, seed, "child")
}

// startNamedChild starts a child proposer whose keys are name-0.. name-3.
func startNamedChild(t *testing.T, e *env, seed int64, name string) *childRun {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), name+".jsonl")
	p, err := harness.StartProc(t, harness.ProcSpec{
		Name: name + "-proposer", Path: self, Args: []string{"-test.run=^$"},
		Env: []string{
			childEnv + "=1",
			childNATSEnv + "=" + urlsFrom(e.nats, 2),
			childAccEnv + "=" + strings.Join(e.cfg.Acceptors, ","),
			childOutEnv + "=" + out,
			childSeedEnv + "=" + strconv.FormatInt(seed, 10),
			childNameEnv + "=" + name,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	if err := p.WaitOutput(ctx, "child: running"); err != nil {
		t.Fatal(err)
	}
	return &childRun{proc: p, out: out}
}

// check stops the child and checks, by reading its keys through p, that
// none of its acknowledged writes was lost: each key's final value is the
// child's last acknowledged write to it or a later one.
func (c *childRun) check(ctx context.Context, t *testing.T, p *proposer) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.proc.Terminate(tctx); err != nil {
		t.Errorf("child proposer: %v", err)
	}
	if err := c.proc.Wait(tctx); err != nil {
		t.Errorf("child proposer exited with %v", err)
	}
	f, err := os.Open(c.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	acked := map[string]int{}   // key → last acknowledged seq
	written := map[string]int{} // key → last attempted seq
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r childRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("child history: %v", err)
		}
		counts[r.Status]++
		written[r.Key] = r.Seq
		if r.Status == "ok" {
			acked[r.Key] = r.Seq
		}
	}
	t.Logf("child proposer: %d ok, %d failed, %d indeterminate writes", counts["ok"], counts["failed"], counts["indeterminate"])
	if counts["ok"] == 0 {
		t.Errorf("child proposer: no acknowledged write")
	}
	for key, want := range acked {
		var got []byte
		for {
			rctx, rcancel := context.WithTimeout(tctx, 3*time.Second)
			got, err = p.client.Read(rctx, key)
			rcancel()
			if err == nil || tctx.Err() != nil {
				break
			}
		}
		if err != nil {
			t.Errorf("child key %s: final read: %v", key, err)
			continue
		}
		seq, _ := strconv.Atoi(string(got))
		if seq < want || seq > written[key] {
			t.Errorf("child key %s: final value %q, want the acknowledged write %d or a later attempt (up to %d): acknowledged write lost",
				key, got, want, written[key])
		}
	}
}
