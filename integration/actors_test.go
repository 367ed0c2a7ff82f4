//go:build !race

// protoactor-go's cluster has data races of its own (disthash's Manager.Get
// reads the rendezvous hash its topology handler replaces without a lock), and
// this test runs a protoactor cluster client in the test process, so it is
// left out of -race runs like the example's and actors' cluster tests.

package integration

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protosynod/protosynod/actors"
	example "github.com/protosynod/protosynod/examples/cluster/scenario"
	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/synod"
)

// Bounds of TestActorMemberCrash.
const (
	// actorOpTimeout bounds one deposit with all its retries during the
	// traffic; a deposit still undecided then is retried once more after
	// the traffic stops.
	actorOpTimeout = 25 * time.Second
	// actorResumeBound is how long after the kill every account grain must
	// have answered a request sent after the kill.
	actorResumeBound = 20 * time.Second
	// actorWarmup is how many deposits are acknowledged before the kill.
	actorWarmup = 100
	// actorWorkers is how many goroutines send deposits.
	actorWorkers = 4
)

// actorAccounts are the account grains of TestActorMemberCrash.
var actorAccounts = []string{"ada", "bea", "cyd", "dov", "eli", "fay"}

// memberJoinedRE matches the line `cluster -role member` prints once it has
// joined: its ID and its protoactor remoting address.
var memberJoinedRE = regexp.MustCompile(`member (\S+) at (\S+) joined`)

// TestActorMemberCrash kills (SIGKILL) the protoactor member process hosting
// the most account grains of the example cluster while a cluster client in
// the test process sends them deposits, and checks that every grain answers
// again from the surviving member within actorResumeBound and that every
// balance equals the sum of the deposits acknowledged for it: a grain's state
// lives in its register, not in the member that hosted it, and a deposit
// retried with its request ID after a lost reply is applied exactly once.
func TestActorMemberCrash(t *testing.T) {
	skipShort(t)
	seed := scenarioSeed(t, baseSeed(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	bin := suite.Binary(t, "./examples/cluster")
	natsc := harness.StartNATSCluster(t, 1, harness.WithNATSServerBinary(suite.NATSServer(t)))
	url := natsc.ClientURL(0)
	cfg := example.DefaultConfig(url)
	cfg.Seed = uint64(seed)

	logDir := t.TempDir()
	start := func(name string, args ...string) *harness.Proc {
		t.Helper()
		p, err := harness.StartProc(t, harness.ProcSpec{Name: name, Path: bin, Args: args, LogDir: logDir})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var procs []*harness.Proc
	for _, id := range cfg.Acceptors {
		procs = append(procs, start("acceptor-"+id, "-role", "acceptor", "-id", id,
			"-data", filepath.Join(t.TempDir(), id), "-nats", url))
	}
	members := map[string]*harness.Proc{}
	for _, id := range []string{"m1", "m2"} {
		members[id] = start("member-"+id, "-role", "member", "-id", id, "-nats", url)
		procs = append(procs, members[id])
	}
	rctx, rcancel := context.WithTimeout(ctx, readyTimeout)
	defer rcancel()
	if err := each(procs, func(p *harness.Proc) error {
		want := " serving "
		if strings.HasPrefix(p.Name(), "member-") {
			want = " joined "
		}
		return p.WaitOutput(rctx, want)
	}); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{} // remoting address → member ID
	for id, p := range members {
		m := memberJoinedRE.FindStringSubmatch(p.Tail())
		if m == nil || m[1] != id {
			t.Fatalf("member %s: no joined line in %q", id, p.Tail())
		}
		addrs[m[2]] = id
	}
	client, err := example.StartClient(ctx, cfg, "it-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Stop)
	for client.Members() < len(members) {
		if rctx.Err() != nil {
			t.Fatalf("client sees %d members, want %d", client.Members(), len(members))
		}
		sleep(rctx, 20*time.Millisecond)
	}
	t.Logf("processes up and client sees %d members after %v", client.Members(), time.Since(began).Round(time.Millisecond))

	l := newActorLoad(client, seed)
	l.start(ctx)
	defer l.stop()
	if err := l.waitAcked(ctx, actorWarmup); err != nil {
		t.Fatalf("warm-up: %v", err)
	}

	// Kill the member hosting the most grains.
	hosts := map[string]string{}
	count := map[string]int{}
	for _, a := range actorAccounts {
		hosts[a] = l.host(a, addrs)
		count[hosts[a]]++
	}
	victim := "m1"
	if count["m2"] > count["m1"] {
		victim = "m2"
	}
	survivor := map[string]string{"m1": "m2", "m2": "m1"}[victim]
	var moved []string
	for _, a := range actorAccounts {
		if hosts[a] == victim {
			moved = append(moved, a)
		}
	}
	t.Logf("hosts before the kill: %v; killing %s (hosts %v) with SIGKILL after %d acknowledged deposits",
		hosts, victim, moved, l.okCount())
	if len(moved) == 0 {
		t.Fatalf("no grain on either member: hosts %v", hosts)
	}
	killedAt := l.markKill()
	if err := members[victim].Kill(); err != nil {
		t.Fatal(err)
	}

	// Every grain answers a request sent after the kill, within the bound.
	back, failover := l.waitResumed(ctx, killedAt, actorResumeBound)
	for _, a := range moved {
		if at, ok := back[a]; ok {
			t.Logf("grain %s (was on %s) answered again %v after the kill", a, victim, at.Sub(killedAt).Round(time.Millisecond))
		}
	}
	if len(back) < len(actorAccounts) {
		var missing []string
		for _, a := range actorAccounts {
			if _, ok := back[a]; !ok {
				missing = append(missing, a)
			}
		}
		t.Errorf("grains %v did not answer within %v of the kill", missing, actorResumeBound)
	}
	t.Logf("every grain answered again %v after the kill of %s", failover.Round(time.Millisecond), victim)
	sleep(ctx, 500*time.Millisecond) // a little more traffic on the new hosts
	l.stop()
	for _, a := range moved {
		if h := l.host(a, addrs); h != survivor {
			t.Errorf("grain %s was on %s, now on %q, want %s", a, victim, h, survivor)
		}
	}
	l.resolve(ctx, t)

	// Every balance is the sum of its acknowledged deposits, each once.
	violations, lost := 0, 0
	for _, a := range actorAccounts {
		rctx, rcancel := context.WithTimeout(ctx, finalReadBound)
		st, err := actors.Read[*example.Balance](rctx, actors.Grain(client.Cluster, a, example.AccountKind), actors.WithRetry(example.AttemptTimeout))
		rcancel()
		if err != nil {
			t.Errorf("read %s: %v", a, err)
			continue
		}
		sum, ops, pending := l.ledger(a)
		switch {
		case pending > 0:
			// An unresolved deposit may or may not have applied.
			if st.GetBalance() < sum || st.GetBalance() > sum+pending {
				violations++
				t.Errorf("account %s: balance %d, want %d..%d (acknowledged + undecided)", a, st.GetBalance(), sum, sum+pending)
			}
		case st.GetBalance() != sum || st.GetOperations() != ops:
			violations++
			if st.GetBalance() < sum {
				lost++
			}
			t.Errorf("account %s: balance %d after %d operations, want %d after %d acknowledged deposits",
				a, st.GetBalance(), st.GetOperations(), sum, ops)
		}
	}
	row := l.row(t.Name(), violations, lost)
	suite.Summary.Add(row)
	t.Logf("%d deposits acknowledged, %d attempts failed, %d indeterminate, %d retried; longest without success %v; failover %v; whole test %v",
		row.OK, row.Failed, row.Indeterminate, l.retried, row.LongestUnavailable.Round(time.Millisecond),
		failover.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// deposit is one deposit request: its request ID stays the same across
// retries.
type deposit struct {
	account string
	amount  int64
	id      string
}

// actorLoad sends deposits to the account grains from actorWorkers
// goroutines and keeps the ledger of what was acknowledged.
type actorLoad struct {
	client *example.Node
	seed   int64
	stopCh chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu                          sync.Mutex
	acked                       map[string]int64 // account → sum of acknowledged deposits
	ackedOps                    map[string]int64 // account → acknowledged deposits
	undecided                   []deposit        // deposits given up on during the traffic
	okTimes                     []time.Time      // replies of acknowledged attempts
	first, last                 time.Time        // traffic started, stopped
	killedAt                    time.Time
	resumed                     map[string]time.Time // first reply to an attempt sent after killedAt
	changed                     chan struct{}        // closed and replaced on every acknowledgement
	failed, undecidedN, retried int
}

func newActorLoad(client *example.Node, seed int64) *actorLoad {
	return &actorLoad{
		client: client, seed: seed, stopCh: make(chan struct{}),
		acked: map[string]int64{}, ackedOps: map[string]int64{},
		resumed: map[string]time.Time{}, changed: make(chan struct{}),
	}
}

// start starts the workers.
func (l *actorLoad) start(ctx context.Context) {
	l.mu.Lock()
	l.first = time.Now()
	l.mu.Unlock()
	for w := range actorWorkers {
		l.wg.Go(func() {
			rng := newRand(l.seed + int64(w))
			for {
				select {
				case <-l.stopCh:
					return
				case <-ctx.Done():
					return
				default:
				}
				d := deposit{
					account: actorAccounts[rng.IntN(len(actorAccounts))],
					amount:  1 + rng.Int64N(50),
					id:      actors.NewRequestID(),
				}
				octx, cancel := context.WithTimeout(ctx, actorOpTimeout)
				ok := l.send(octx, d)
				cancel()
				if !ok {
					l.mu.Lock()
					l.undecided = append(l.undecided, d)
					l.mu.Unlock()
				}
			}
		})
	}
}

// stop stops the workers and waits for the deposits in flight.
func (l *actorLoad) stop() {
	l.once.Do(func() {
		close(l.stopCh)
		l.wg.Wait()
		l.mu.Lock()
		l.last = time.Now()
		l.mu.Unlock()
	})
}

// send sends d until it is acknowledged or ctx ends, with the same request
// ID on every attempt, and records the outcome of each attempt.
func (l *actorLoad) send(ctx context.Context, d deposit) bool {
	target := actors.Grain(l.client.Cluster, d.account, example.AccountKind)
	for attempts := 0; ; attempts++ {
		sent := time.Now()
		_, err := example.Attempt(ctx, target, &example.Deposit{Amount: d.amount}, d.id)
		now := time.Now()
		l.mu.Lock()
		if attempts > 0 {
			l.retried++
		}
		switch {
		case err == nil:
			l.acked[d.account] += d.amount
			l.ackedOps[d.account]++
			l.okTimes = append(l.okTimes, now)
			if !l.killedAt.IsZero() && !sent.Before(l.killedAt) {
				if _, ok := l.resumed[d.account]; !ok {
					l.resumed[d.account] = now
				}
			}
			close(l.changed)
			l.changed = make(chan struct{})
		case errors.Is(err, synod.ErrIndeterminate):
			l.undecidedN++
		default:
			l.failed++
		}
		l.mu.Unlock()
		if err == nil {
			return true
		}
		if !example.Retryable(err) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// waitAcked waits until n deposits are acknowledged and every account has
// one.
func (l *actorLoad) waitAcked(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		l.mu.Lock()
		done := len(l.okTimes) >= n && len(l.ackedOps) == len(actorAccounts)
		got, ch := len(l.okTimes), l.changed
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d deposits acknowledged: %w", got, n, ctx.Err())
		case <-ch:
		}
	}
}

// okCount returns how many deposits were acknowledged.
func (l *actorLoad) okCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.okTimes)
}

// markKill records the time of the kill, after which an acknowledged
// attempt counts as the grain answering again.
func (l *actorLoad) markKill() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.killedAt = time.Now()
	return l.killedAt
}

// waitResumed waits until every account acknowledged an attempt sent after
// killedAt, or bound after killedAt. It returns when each did and the
// longest time from the kill.
func (l *actorLoad) waitResumed(ctx context.Context, killedAt time.Time, bound time.Duration) (map[string]time.Time, time.Duration) {
	ctx, cancel := context.WithDeadline(ctx, killedAt.Add(bound))
	defer cancel()
	for ctx.Err() == nil {
		l.mu.Lock()
		done, ch := len(l.resumed) == len(actorAccounts), l.changed
		l.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
		case <-ch:
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	back := map[string]time.Time{}
	var longest time.Duration
	for a, at := range l.resumed {
		back[a] = at
		longest = max(longest, at.Sub(killedAt))
	}
	return back, longest
}

// host returns the member hosting account's activation, as the client's
// lookup says.
func (l *actorLoad) host(account string, addrs map[string]string) string {
	pid := l.client.Cluster.Get(account, example.AccountKind)
	if pid == nil {
		return "?"
	}
	if id, ok := addrs[pid.Address]; ok {
		return id
	}
	return pid.Address
}

// resolve retries, after the traffic stopped, the deposits given up on
// during it, each with its own request ID, so that the ledger is exact.
func (l *actorLoad) resolve(ctx context.Context, t *testing.T) {
	l.mu.Lock()
	pending := slices.Clone(l.undecided)
	l.undecided = nil
	l.mu.Unlock()
	for _, d := range pending {
		octx, cancel := context.WithTimeout(ctx, finalReadBound)
		ok := l.send(octx, d)
		cancel()
		if !ok {
			t.Errorf("deposit %d to %s (request %s) still undecided", d.amount, d.account, d.id)
			l.mu.Lock()
			l.undecided = append(l.undecided, d)
			l.mu.Unlock()
		}
	}
	if len(pending) > 0 {
		t.Logf("resolved %d deposits undecided during the traffic", len(pending))
	}
}

// ledger returns the acknowledged sum and count of account's deposits, and
// the sum of its still undecided ones.
func (l *actorLoad) ledger(account string) (sum, ops, pending int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.undecided {
		if d.account == account {
			pending += d.amount
		}
	}
	return l.acked[account], l.ackedOps[account], pending
}

// row is the summary row of the run: attempts by outcome and the longest
// stretch of the traffic with no acknowledged deposit.
func (l *actorLoad) row(name string, violations, lost int) harness.SummaryRow {
	l.mu.Lock()
	defer l.mu.Unlock()
	times := slices.Clone(l.okTimes)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var longest time.Duration
	prev := l.first
	for _, at := range append(times, l.last) {
		longest = max(longest, at.Sub(prev))
		prev = at
	}
	return harness.SummaryRow{
		Scenario: name, OK: len(l.okTimes), Failed: l.failed, Indeterminate: l.undecidedN,
		LongestUnavailable: longest, Linearizable: "n/a", Violations: violations, LostWrites: lost,
	}
}
