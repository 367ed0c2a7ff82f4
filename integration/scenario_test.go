package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/integration/harness"
)

// Bounds of one scenario.
const (
	resumeBound    = 20 * time.Second // heal → every proposer completes a write
	finalReadBound = 30 * time.Second
	checkTimeout   = 60 * time.Second // porcupine
	roundTimeout   = 40 * time.Second // added to the scenario's deadline per fault round
)

// fault is one injected failure: inject starts it, heal ends it. during, if
// set, runs after inject while the fault holds (to check failover, say).
type fault struct {
	inject func(ctx context.Context, r *run) error
	during func(ctx context.Context, r *run) error
	heal   func(ctx context.Context, r *run) error
}

// scenario is one fault-injection test under load.
type scenario struct {
	name  string
	env   envConfig
	fault fault
	// hold is how long the fault lasts (before during's own time).
	hold time.Duration
	// proposerURL returns the -nats URL of proposer i; nil means every
	// server, starting with server i.
	proposerURL func(r *run, i int) string
	// proposerOpts are extra connection options of every proposer.
	proposerOpts []nats.Option
	// setup runs after the env started and before the proposers connect.
	setup func(t *testing.T, r *run)
	// child starts a proposer in a separate process for the scenario.
	child bool
	// unsafe marks a scenario that is expected to break safety (acceptors
	// that lose acknowledged writes): its history is analyzed and added to
	// the summary, and the caller judges the result; nothing fails here.
	unsafe bool
	// quiesce stops the workload before the (single) fault, so that the
	// final reads see exactly what survived it.
	quiesce bool
}

// run is the state of one running scenario, for the fault functions.
type run struct {
	t     *testing.T
	env   *env
	w     *workload
	rec   *harness.Recorder
	extra []harness.LogSource

	// kill-nats-server and kill-shared-nats-server: the server killed, the
	// acceptors connected to it, and how many reconnects each had logged
	// before.
	killed     int
	victims    []int
	reconnects map[int]int
}

// proposers is how many proposer connections a scenario uses, one per
// NATS server.
const proposers = 3

// runScenario runs sc under load, checks the history and adds a summary row.
func runScenario(t *testing.T, sc scenario, seed int64) *harness.Result {
	rounds := 2
	if soak() {
		rounds = 6
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute+time.Duration(rounds)*roundTimeout)
	defer cancel()
	began := time.Now()
	e := startEnv(t, sc.env)
	t.Logf("processes up after %v", time.Since(began).Round(time.Millisecond))
	r := &run{t: t, env: e, rec: harness.NewRecorder()}
	if sc.setup != nil {
		sc.setup(t, r)
	}
	var props []*proposer
	for i := range proposers {
		url := urlsFrom(e.nats, i%e.nats.Size())
		if sc.proposerURL != nil {
			url = sc.proposerURL(r, i)
		}
		props = append(props, e.newProposer(t, fmt.Sprintf("p%d", i), url, seed+int64(i), sc.proposerOpts...))
	}
	var ch *childRun
	if sc.child {
		ch = startChild(t, e, seed)
	}
	wcfg := defaultWorkload()
	wcfg.maxOps *= rounds
	r.w = newWorkload(wcfg, r.rec, props, seed)
	r.w.start(ctx)
	defer r.w.stop()

	if sc.quiesce {
		rounds = 1
	}
	for round := range rounds {
		t0 := time.Now()
		if err := r.w.waitOK(ctx, 150); err != nil {
			t.Fatalf("warm-up before fault %d: %v", round, err)
		}
		if sc.quiesce {
			r.w.stop()
		}
		end := r.rec.Annotate("nemesis", sc.name)
		t.Logf("fault %d: %s (warm-up took %v)", round, sc.name, time.Since(t0).Round(time.Millisecond))
		if err := sc.fault.inject(ctx, r); err != nil {
			t.Fatalf("inject %s: %v", sc.name, err)
		}
		sleep(ctx, sc.hold)
		if sc.fault.during != nil {
			if err := sc.fault.during(ctx, r); err != nil {
				t.Errorf("while %s: %v", sc.name, err)
			}
		}
		if err := sc.fault.heal(ctx, r); err != nil {
			t.Fatalf("heal %s: %v", sc.name, err)
		}
		end()
		r.rec.Annotate("nemesis", "healed")
		r.w.verifyResume(ctx, t, resumeBound)
		if sc.quiesce {
			break
		}
		t0 = time.Now()
		if err := r.w.waitOK(ctx, 200); err != nil {
			t.Errorf("load after healing: %v", err)
		}
		t.Logf("200 operations after healing took %v", time.Since(t0).Round(time.Millisecond))
	}
	r.w.stop()
	if ch != nil {
		ch.check(ctx, t, props[0])
	}
	r.w.finalReads(ctx, t, finalReadBound)
	t.Logf("final reads done after %v", time.Since(began).Round(time.Millisecond))
	logErrors(t, r.rec)
	logs := append(e.logs(), r.extra...)
	if sc.unsafe {
		res := r.rec.Analyze(checkTimeout)
		t.Logf("history of %d operations: %v", len(r.rec.Ops()), res)
		suite.Summary.Add(res.Row(t.Name() + " (unsafe, must fail)"))
		return res
	}
	return r.rec.Check(t, checkTimeout, harness.WithLogs(logs...), harness.WithSummary(suite.Summary, t.Name()))
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// each runs f on every proc concurrently and joins the errors.
func each(procs []*harness.Proc, f func(p *harness.Proc) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() { errs[i] = f(p) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// killRestart kills the acceptors with the given indexes with SIGKILL and
// restarts them on their data directories when healed.
func killRestart(idx ...int) fault {
	pick := func(r *run) []*harness.Proc {
		var ps []*harness.Proc
		for _, i := range idx {
			ps = append(ps, r.env.acceptors[i])
		}
		return ps
	}
	return fault{
		inject: func(_ context.Context, r *run) error {
			return each(pick(r), (*harness.Proc).Kill)
		},
		heal: func(ctx context.Context, r *run) error {
			return r.env.restart(ctx, pick(r)...)
		},
	}
}

// killAll kills every acceptor at once.
func killAll() fault {
	return fault{
		inject: func(_ context.Context, r *run) error {
			return each(r.env.acceptors, (*harness.Proc).Kill)
		},
		heal: func(ctx context.Context, r *run) error {
			return r.env.restart(ctx, r.env.acceptors...)
		},
	}
}

func natsEnv(acceptors int) envConfig {
	return envConfig{natsServers: 3, acceptors: acceptors}
}

// TestFaults runs every process-level fault scenario under load.
func TestFaults(t *testing.T) {
	skipShort(t)
	base := baseSeed(t)
	scenarios := []scenario{
		{name: "kill-1-of-3", env: natsEnv(3), fault: killRestart(0), hold: 2 * time.Second, child: true},
		{name: "kill-2-of-5", env: natsEnv(5), fault: killRestart(1, 3), hold: 2 * time.Second},
		{name: "kill-all-3", env: natsEnv(3), fault: killAll(), hold: time.Second},
		{
			name: "sigstop-acceptor", env: natsEnv(3), hold: 3 * time.Second,
			fault: fault{
				inject: func(_ context.Context, r *run) error { return r.env.acceptors[1].Stop() },
				heal:   func(_ context.Context, r *run) error { return r.env.acceptors[1].Cont() },
			},
		},
		{
			name: "sigstop-nats-server", env: natsEnv(3), hold: 5 * time.Second,
			fault: fault{
				inject: func(_ context.Context, r *run) error { return r.env.nats.Server(1).Stop() },
				heal: func(ctx context.Context, r *run) error {
					if err := r.env.nats.Server(1).Cont(); err != nil {
						return err
					}
					return r.env.nats.WaitReady(ctx)
				},
			},
		},
		{
			// Kill the server that proposer p0 and an acceptor are connected
			// to (at first server 0, which p0 and a0 connect to first);
			// both must fail over to the others.
			name: "kill-nats-server", env: natsEnv(3), hold: time.Second,
			fault: fault{inject: killProposersServer, during: failedOver, heal: restartKilledServer},
		},
		{
			// Kill a server that two acceptors are connected to (a0 and a1
			// connect to server 0 at first, and after each fault some
			// server serves two again): the requests in flight to both
			// are lost with it, with no answer, and no quorum answers the
			// phases that sent them until both acceptors are back.
			name: "kill-shared-nats-server", hold: time.Second,
			env: envConfig{natsServers: 3, acceptors: 3, acceptorURL: func(c *harness.NATSCluster, i int) string {
				return c.ClientURL([]int{0, 0, 2}[i])
			}},
			fault: fault{inject: killSharedServer, during: acceptorsFailedOver, heal: restartKilledServer},
		},
	}
	for _, sc := range scenarios {
		for s := range seeds() {
			t.Run(sc.name, func(t *testing.T) {
				runScenario(t, sc, scenarioSeed(t, base+int64(s)))
			})
		}
	}
}

// seeds is how many seeds each scenario runs with: one, or three with
// PROTOSYNOD_SOAK.
func seeds() int {
	if soak() {
		return 3
	}
	return 1
}

// killProposersServer kills the NATS server proposer p0 is connected to,
// after finding the acceptors connected to it (in the server's /connz).
func killProposersServer(ctx context.Context, r *run) error {
	url := r.w.props[0].nc.ConnectedUrl()
	server := -1
	for i := range r.env.nats.Size() {
		if r.env.nats.ClientURL(i) == url {
			server = i
		}
	}
	if server < 0 {
		return fmt.Errorf("proposer p0 is connected to %q, not to a server of the cluster", url)
	}
	on, err := acceptorsOn(ctx, r, server)
	if err != nil {
		return err
	}
	if len(on) == 0 {
		return fmt.Errorf("no acceptor is connected to server %d", server)
	}
	r.t.Logf("killing nats server %d, which serves proposer p0 and acceptors %v", server, on)
	return r.kill(server, on)
}

// killSharedServer kills the NATS server that most acceptors are connected
// to (at least two).
func killSharedServer(ctx context.Context, r *run) error {
	server, most := -1, []int(nil)
	for i := range r.env.nats.Size() {
		on, err := acceptorsOn(ctx, r, i)
		if err != nil {
			return err
		}
		if len(on) > len(most) {
			server, most = i, on
		}
	}
	if len(most) < 2 {
		return fmt.Errorf("no NATS server serves two acceptors")
	}
	r.t.Logf("killing nats server %d, which serves acceptors %v", server, most)
	return r.kill(server, most)
}

// acceptorsOn returns the acceptors connected to NATS server i.
func acceptorsOn(ctx context.Context, r *run, i int) ([]int, error) {
	names, err := connectionNames(ctx, r.env.nats.MonitorURL(i))
	if err != nil {
		return nil, err
	}
	var on []int
	for a := range r.env.acceptors {
		if names[fmt.Sprintf("synod-acceptor-%s-a%d", clusterName, a)] {
			on = append(on, a)
		}
	}
	return on, nil
}

// kill notes the acceptors connected to NATS server i and how many
// reconnects each has logged, and kills the server.
func (r *run) kill(i int, victims []int) error {
	r.killed, r.victims, r.reconnects = i, victims, map[int]int{}
	for _, a := range victims {
		r.reconnects[a] = strings.Count(r.env.acceptors[a].Tail(), reconnectedLine)
	}
	return r.env.nats.Server(i).Kill()
}

// victimsReconnected waits until every acceptor of the killed server logged
// one more reconnect.
func victimsReconnected(ctx context.Context, r *run) error {
	for _, a := range r.victims {
		for strings.Count(r.env.acceptors[a].Tail(), reconnectedLine) <= r.reconnects[a] {
			if ctx.Err() != nil {
				return fmt.Errorf("acceptor a%d did not fail over from server %d", a, r.killed)
			}
			sleep(ctx, 20*time.Millisecond)
		}
	}
	return nil
}

// acceptorsFailedOver checks, while the server killSharedServer killed is
// dead, that its acceptors reconnected and that every proposer completes a
// change.
func acceptorsFailedOver(ctx context.Context, r *run) error {
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := victimsReconnected(wctx, r); err != nil {
		return err
	}
	r.t.Logf("failed over: acceptors %v reconnected", r.victims)
	r.w.verifyResume(wctx, r.t, 10*time.Second)
	return nil
}

// reconnectedLine is what synod-acceptor logs after a NATS reconnect.
const reconnectedLine = "nats: reconnected"

// restartKilledServer restarts the server killProposersServer killed.
func restartKilledServer(ctx context.Context, r *run) error {
	if err := r.env.nats.Server(r.killed).Restart(); err != nil {
		return err
	}
	return r.env.nats.WaitReady(ctx)
}

// connectionNames returns the names of the client connections of the
// server whose monitoring endpoint is monitorURL.
func connectionNames(ctx context.Context, monitorURL string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, monitorURL+"/connz?limit=4096", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("connz: %w", err)
	}
	defer resp.Body.Close()
	var connz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&connz); err != nil {
		return nil, fmt.Errorf("connz: %w", err)
	}
	names := map[string]bool{}
	for _, c := range connz.Connections {
		names[c.Name] = true
	}
	return names, nil
}

// failedOver checks, while the server killed by killProposersServer is
// dead, that its acceptors reconnected to another server and that proposer
// p0 moved to another server and completes changes.
func failedOver(ctx context.Context, r *run) error {
	dead := r.env.nats.ClientURL(r.killed)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := victimsReconnected(wctx, r); err != nil {
		return err
	}
	p := r.w.props[0]
	for p.nc.ConnectedUrl() == dead || !p.nc.IsConnected() {
		if wctx.Err() != nil {
			return fmt.Errorf("proposer p0 still on %s (%v)", p.nc.ConnectedUrl(), p.nc.Status())
		}
		sleep(wctx, 20*time.Millisecond)
	}
	r.t.Logf("failed over: acceptors %v reconnected, p0 now on %s", r.victims, p.nc.ConnectedUrl())
	r.w.verifyResume(wctx, r.t, 10*time.Second)
	return nil
}

var attemptsRE = regexp.MustCompile(`change "[^"]*" after \d+ attempts`)

// logErrors logs the most frequent errors of failed and indeterminate
// operations, to explain the summary's counts.
func logErrors(t *testing.T, rec *harness.Recorder) {
	t.Helper()
	counts := map[string]int{}
	for _, op := range rec.Ops() {
		if op.Err != nil {
			msg := op.Status.String() + " " + op.Input.Kind.String() + ": " + firstLine(op.Err)
			msg = attemptsRE.ReplaceAllString(msg, `change after N attempts`)
			counts[msg]++
		}
	}
	msgs := make([]string, 0, len(counts))
	for m := range counts {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool { return counts[msgs[i]] > counts[msgs[j]] })
	for i, m := range msgs {
		if i == 5 {
			break
		}
		t.Logf("%5d× %s", counts[m], m)
	}
}
