package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// addAcceptor starts a new acceptor process id on an empty data directory
// and waits until it serves.
func (e *env) addAcceptor(ctx context.Context, t *testing.T, id string) *harness.Proc {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	p, err := harness.StartProc(t, harness.ProcSpec{
		Name: "acceptor-" + id, Path: suite.Binary(t, "./cmd/synod-acceptor"), LogDir: t.TempDir(),
		Args: []string{"-id", id, "-cluster", clusterName, "-data", dir,
			"-nats", e.nats.ClientURL(len(e.acceptors) % e.nats.Size()), "-drain-timeout", "5s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.acceptors = append(e.acceptors, p)
	e.dataDirs = append(e.dataDirs, dir)
	if err := e.waitServing(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// operator returns a Reconfigurer over its own connection, starting from
// the env's first configuration, that logs its progress.
func (e *env) operator(t *testing.T) (*synod.Reconfigurer, *natstransport.Transport) {
	t.Helper()
	return e.reconfigurer(t, 0, "operator", func(p synod.Progress) {
		if p.Err != nil || p.Phase == "step done" || p.Phase == "done" || (p.Phase == "rescan" && p.Done == p.Total && p.Total > 0) {
			t.Logf("operator: %s epoch %d %v %s %d/%d %v", p.Phase, p.Config.Epoch, p.Config.Acceptors, p.Acceptor, p.Done, p.Total, p.Err)
		}
	})
}

// reconfigurer returns a Reconfigurer whose client, proposer name, runs
// over its own connection to the env's NATS server number server and
// reports to progress.
func (e *env) reconfigurer(t *testing.T, server int, name string, progress func(synod.Progress)) (*synod.Reconfigurer, *natstransport.Transport) {
	t.Helper()
	nc, err := nats.Connect(urlsFrom(e.nats, server), append(proposerConnOptions("operator", nil), e.natsOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	tr, err := natstransport.NewTransport(nc, clusterName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	c, err := synod.NewClient(synod.RandomProposerID(name), e.cfg, tr, synod.WithPhaseTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r, err := synod.NewReconfigurer(c, tr, synod.WithProgress(progress))
	if err != nil {
		t.Fatal(err)
	}
	return r, tr
}

// synodCLI runs the synod command against the env and returns its stdout
// and stderr.
func (e *env) synodCLI(ctx context.Context, t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, suite.Binary(t, "./cmd/synod"), args...)
	cmd.Env = append(os.Environ(), "SYNOD_NATS="+urlsFrom(e.nats, 0), "SYNOD_CLUSTER="+clusterName)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// TestMembershipUnderLoad: under load from three proposer connections and
// two proposer processes, SIGKILL acceptor a1, delete its data, and replace
// it by the new acceptor a3 with `synod reconfigure --replace a1=a3`; then
// grow to five acceptors and shrink back to three, and stop the retired ones.
// No proposer restarts; no acknowledged write is lost; the history is
// linearizable; the summary reports the longest unavailability.
func TestMembershipUnderLoad(t *testing.T) {
	skipShort(t)
	began := time.Now()
	ctx, seed, e, rec, props := startUnderLoad(t)
	children := []*childRun{startNamedChild(t, e, seed+10, "child1"), startNamedChild(t, e, seed+11, "child2")}
	wcfg := defaultWorkload()
	wcfg.maxOps = 1 << 30 // until stopped
	w := newWorkload(wcfg, rec, props, seed)
	w.start(ctx)
	defer w.stop()
	step := func(what string, n int) {
		t.Helper()
		if err := w.waitOK(ctx, n); err != nil {
			t.Fatalf("load %s: %v", what, err)
		}
	}
	step("before the faults", 150)

	// 1. a1's disk dies: SIGKILL, data gone, a new acceptor a3 replaces it.
	end := rec.Annotate("nemesis", "SIGKILL a1, delete its data, replace it by a3")
	if err := e.acceptors[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(e.dataDirs[1]); err != nil {
		t.Fatal(err)
	}
	e.addAcceptor(ctx, t, "a3")
	t0 := time.Now()
	out, progress, err := e.synodCLI(ctx, t, "-acceptors", "a0,a1,a2", "reconfigure", "--replace", "a1=a3")
	if err != nil {
		t.Fatalf("synod reconfigure --replace a1=a3: %v\nstdout:\n%s\nstderr:\n%s", err, out, progress)
	}
	end()
	t.Logf("$ synod -acceptors a0,a1,a2 reconfigure --replace a1=a3   (%v)\n%s%s", time.Since(t0).Round(time.Millisecond), out, progress)
	w.verifyResume(ctx, t, resumeBound)
	step("after the replacement", 150)

	// 2. Grow to five, 3. shrink to three; retire the others for good.
	r, _ := e.operator(t)
	e.addAcceptor(ctx, t, "a4")
	e.addAcceptor(ctx, t, "a5")
	end = rec.Annotate("nemesis", "grow to a0,a2,a3,a4,a5")
	m, err := r.Reconfigure(ctx, []string{"a0", "a2", "a3", "a4", "a5"}, nil)
	end()
	if err != nil {
		t.Fatalf("grow to five: %v", err)
	}
	t.Logf("grown: %v", m.Config)
	step("with five acceptors", 150)
	end = rec.Annotate("nemesis", "shrink to a3,a4,a5")
	m, err = r.Reconfigure(ctx, []string{"a3", "a4", "a5"}, nil)
	end()
	if err != nil {
		t.Fatalf("shrink to three: %v", err)
	}
	t.Logf("shrunk: %v (retired %v)", m.Config, m.Retired)
	for _, i := range []int{0, 2} {
		if err := e.acceptors[i].Terminate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w.verifyResume(ctx, t, resumeBound)
	step("after the shrink", 200)
	w.stop()

	for _, c := range children {
		c.check(ctx, t, props[0])
		if !strings.Contains(c.proc.Tail(), "a3 a4 a5") {
			t.Errorf("%s did not end on a3,a4,a5: %s", c.proc.Name(), lastLine(c.proc.Tail()))
		}
	}
	for i, p := range props {
		if got := p.client.Config().Acceptors; !slices.Equal(got, []string{"a3", "a4", "a5"}) {
			t.Errorf("proposer p%d ended on %v", i, got)
		}
	}
	w.finalReads(ctx, t, finalReadBound)
	t.Logf("scenario took %v", time.Since(began).Round(time.Millisecond))
	logErrors(t, rec)
	rec.Check(t, checkTimeout, harness.WithLogs(e.logs()...), harness.WithSummary(suite.Summary, t.Name()))
}

// TestDeleteGCUnderLoad deletes registers under load (a fifth of the writes
// are deletions), runs garbage collections while SIGKILLing and restarting an
// acceptor during each, then deletes every key, collects and compacts, and
// reports each acceptor's bytes before and after. The history, in which a
// deletion is a write of the empty value, must be linearizable: no deleted
// value comes back.
func TestDeleteGCUnderLoad(t *testing.T) {
	skipShort(t)
	began := time.Now()
	ctx, seed, e, rec, props := startUnderLoad(t)
	wcfg := defaultWorkload()
	wcfg.maxOps = 1 << 30
	wcfg.keys, wcfg.pad, wcfg.deleteShare = 48, 4<<10, 20
	w := newWorkload(wcfg, rec, props, seed)
	w.start(ctx)
	defer w.stop()
	if err := w.waitOK(ctx, 200); err != nil {
		t.Fatal(err)
	}
	r, tr := e.operator(t)

	// Collect twice under load, each time with an acceptor killed and
	// restarted on its data: once as the collection fences, once as it
	// forgets. A collection that fails on the dead acceptor runs again.
	for round, phase := range []string{"fence", "forget"} {
		victim := e.acceptors[round]
		var once sync.Once
		restarted := make(chan error, 1)
		rr, _ := e.operatorWith(t, func(p synod.Progress) {
			if p.Phase == phase && p.Err == nil {
				once.Do(func() {
					if err := victim.Kill(); err != nil {
						restarted <- err
						return
					}
					t0 := time.Now()
					go func() {
						err := e.restart(ctx, victim)
						t.Logf("%s killed during %s, serving again after %v (%v)", victim.Name(), phase, time.Since(t0).Round(time.Millisecond), err)
						restarted <- err
					}()
				})
			}
		})
		end := rec.Annotate("nemesis", fmt.Sprintf("garbage collection, %s killed during %s", victim.Name(), phase))
		var res synod.GCResult
		var err error
		for attempt := 1; ; attempt++ {
			gctx, gcancel := context.WithTimeout(ctx, 30*time.Second)
			res, err = rr.CollectGarbage(gctx)
			gcancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			t.Logf("collection %d, attempt %d: %v", round, attempt, firstLine(err))
			sleep(ctx, 100*time.Millisecond)
		}
		if err != nil {
			t.Fatalf("collection %d: %v", round, err)
		}
		select {
		case err := <-restarted:
			if err != nil {
				t.Fatalf("restart %s: %v", victim.Name(), err)
			}
		default:
			once.Do(func() {}) // no kill after this
			if len(restarted) == 0 {
				t.Logf("collection %d found nothing to %s: %s not killed", round, phase, victim.Name())
			}
		}
		end()
		t.Logf("collection %d (%s killed during %s): %+v", round, victim.Name(), phase, res)
		if err := w.waitOK(ctx, 150); err != nil {
			t.Fatalf("load after collection %d: %v", round, err)
		}
	}
	w.stop()

	// Delete every key, collect, compact: the space is reclaimed.
	before := map[string]uint64{}
	for _, id := range e.cfg.Acceptors {
		_, b, err := tr.Compact(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = b
	}
	for i, key := range w.keys {
		client := int(w.clients.Add(1)) - 1
		for {
			if _, ok := w.do(ctx, client, props[i%len(props)], harness.Write(key, "")); ok {
				break
			}
			if ctx.Err() != nil {
				t.Fatal(ctx.Err())
			}
		}
	}
	res, err := r.CollectGarbage(ctx)
	if err != nil {
		t.Fatalf("final collection: %v", err)
	}
	t.Logf("final collection: %+v", res)
	var table strings.Builder
	fmt.Fprintf(&table, "acceptor  bytes with %d keys of %d KiB  after deleting and collecting them\n", len(w.keys), wcfg.pad>>10)
	for _, id := range e.cfg.Acceptors {
		_, after, err := tr.Compact(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&table, "%-8s  %28d  %d\n", id, before[id], after)
		if after*4 > before[id] {
			t.Errorf("%s: %d bytes after collection, %d before: not reclaimed", id, after, before[id])
		}
	}
	t.Logf("live table bytes (pebble, after compaction):\n%s", table.String())
	for _, key := range w.keys {
		if v, err := props[0].client.Read(ctx, key); err != nil || len(v) != 0 {
			t.Errorf("%s after deletion and collection: %q, %v; want empty", key, v, err)
		}
	}
	w.finalReads(ctx, t, finalReadBound)
	t.Logf("scenario took %v", time.Since(began).Round(time.Millisecond))
	logErrors(t, rec)
	rec.Check(t, checkTimeout, harness.WithLogs(e.logs()...), harness.WithSummary(suite.Summary, t.Name()))
}

// operatorWith is operator with a progress hook of its own, over server 1.
func (e *env) operatorWith(t *testing.T, progress func(synod.Progress)) (*synod.Reconfigurer, *natstransport.Transport) {
	t.Helper()
	return e.reconfigurer(t, 1, "gc", progress)
}

// startUnderLoad starts the three-server, three-acceptor environment of the
// scenarios under load and one proposer per server slot, each connected first
// to its own server. The context ends with the test or after 3 minutes.
func startUnderLoad(t *testing.T) (ctx context.Context, seed int64, e *env, rec *harness.Recorder, props []*proposer) {
	seed = scenarioSeed(t, baseSeed(t))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	e = startEnv(t, natsEnv(3))
	rec = harness.NewRecorder()
	for i := range proposers {
		props = append(props, e.newProposer(t, fmt.Sprintf("p%d", i), urlsFrom(e.nats, i%e.nats.Size()), seed+int64(i)))
	}
	return ctx, seed, e, rec, props
}
