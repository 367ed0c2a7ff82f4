package scenario

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/actors"
)

var missileGrain = grain{MissileKind, "missile"}

// missile is step 1: the launch state machine, command by command.
func (r *runner) missile(ctx context.Context) error {
	r.n.heading("step 1: missile launch (%s): launches once %d generals have signed; revoke only before launch", missileGrain, SignaturesToLaunch)
	script := []struct {
		msg  proto.Message
		want error // the expected refusal, or nil
	}{
		{&Sign{General: "alice"}, nil},
		{&Revoke{General: "bob"}, ErrNotSigned},
		{&Revoke{General: "alice"}, nil},
		{&Sign{General: "alice"}, nil},
		{&Sign{General: "bob"}, nil},
		{&Revoke{General: "alice"}, ErrLaunched},
		{&Sign{General: "carol"}, ErrLaunched},
	}
	var rows [][]string
	ok := true
	var bad []string
	for i, c := range script {
		o := r.request(ctx, missileGrain, c.msg, "")
		if o.err != nil && !o.refused() {
			return fmt.Errorf("step 1, %s: %w", command(c.msg), o.err)
		}
		st, err := r.readLaunch(ctx)
		if err != nil {
			return fmt.Errorf("step 1, read the missile: %w", err)
		}
		signed := strings.Join(st.GetSigned(), ",")
		if signed == "" {
			signed = "-"
		}
		rows = append(rows, []string{fmt.Sprint(i + 1), command(c.msg), describe(o), signed, fmt.Sprint(st.GetLaunched()), ms(o.took)})
		if (c.want == nil) != (o.err == nil) || (c.want != nil && !errors.Is(o.err, c.want)) {
			ok = false
			bad = append(bad, fmt.Sprintf("%s: %s", command(c.msg), describe(o)))
		}
	}
	r.n.table([]string{"#", "command", "reply", "signed", "launched", "took"}, rows)
	st, err := r.readLaunch(ctx)
	if err != nil {
		return fmt.Errorf("step 1, read the missile: %w", err)
	}
	r.check(ok, "missile: each command accepted or refused by the rules", "%d commands%s", len(script), listBad(bad))
	r.check(launchedBy(st, "alice", "bob"), "missile: launched by exactly the two signatures", "%s", describeLaunch(st))
	r.n.say("the missile launched on bob's signature; alice's revocation and carol's signature after the launch were refused")
	return nil
}

func listBad(bad []string) string {
	if len(bad) == 0 {
		return ""
	}
	return "; unexpected: " + strings.Join(bad, "; ")
}

func launchedBy(st *LaunchState, generals ...string) bool {
	return st.GetLaunched() && slices.Equal(st.GetLaunchedBy(), generals) && slices.Equal(st.GetSigned(), generals)
}

// command renders a message as a command line.
func command(m proto.Message) string {
	switch m := m.(type) {
	case *Sign:
		return "Sign(" + m.General + ")"
	case *Revoke:
		return "Revoke(" + m.General + ")"
	case *Deposit:
		return fmt.Sprintf("Deposit(%d)", m.Amount)
	case *Withdraw:
		return fmt.Sprintf("Withdraw(%d)", m.Amount)
	}
	return fmt.Sprintf("%T", m)
}

// ledger is what the clients know was acknowledged, per account.
type ledger struct {
	mu      sync.Mutex
	balance map[string]int64 // opening + acknowledged deltas
	ops     map[string]int64 // acknowledged operations
	refused map[string]int64 // overdrafts refused
	failed  []string         // requests that neither applied nor were refused
}

func newLedger() *ledger {
	return &ledger{balance: map[string]int64{}, ops: map[string]int64{}, refused: map[string]int64{}}
}

func (l *ledger) record(g grain, msg proto.Message, o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case o.err == nil:
		l.ops[g.name]++
		switch m := msg.(type) {
		case *Deposit:
			l.balance[g.name] += m.Amount
		case *Withdraw:
			l.balance[g.name] -= m.Amount
		}
	case o.refused():
		l.refused[g.name]++
	default:
		l.failed = append(l.failed, fmt.Sprintf("%s %s (request %s): %v", g, command(msg), o.id, o.err))
	}
}

// accounts returns the account grains.
func accounts() []grain {
	gs := make([]grain, len(holders))
	for i, h := range holders {
		gs[i] = grain{AccountKind, h}
	}
	return gs
}

// traffic sends random deposits and withdrawals from env.Clients
// concurrent clients until each has sent n operations (n > 0) or stop is
// closed, and calls acked with the time it was sent and the time of the
// reply after each acknowledged or refused one.
func (r *runner) traffic(ctx context.Context, l *ledger, stream uint64, n int, stop <-chan struct{}, acked func(g grain, sent, replied time.Time)) {
	var wg sync.WaitGroup
	for c := range r.env.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := r.newRand(stream*1000 + uint64(c))
			gs := accounts()
			for i := 0; n <= 0 || i < n; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				g := gs[rng.IntN(len(gs))]
				var msg proto.Message = &Deposit{Amount: 1 + rng.Int64N(50)}
				if rng.IntN(2) == 0 {
					msg = &Withdraw{Amount: 1 + rng.Int64N(80)}
				}
				if stop != nil && rng.IntN(10) == 0 {
					// Now and then, a general tries to sign the
					// launched missile: refused, wherever it lives.
					g, msg = missileGrain, &Sign{General: generals[rng.IntN(len(generals))]}
				}
				sent := time.Now()
				o := r.request(ctx, g, msg, "")
				if g.kind == AccountKind {
					l.record(g, msg, o)
				} else if o.err == nil {
					r.check(false, "missile: no signature accepted after the launch", "%s accepted: %s", command(msg), describe(o))
				}
				if acked != nil && (o.err == nil || o.refused()) {
					acked(g, sent, time.Now())
				}
			}
		}()
	}
	wg.Wait()
}

// bank is step 2: accounts under concurrent deposits and withdrawals.
func (r *runner) bank(ctx context.Context) error {
	gs := accounts()
	r.n.heading("step 2: bank accounts %s..%s: concurrent deposits and withdrawals, never below zero", gs[0], gs[len(gs)-1])
	l := newLedger()
	var rows [][]string
	for _, g := range gs {
		o := r.request(ctx, g, &Deposit{Amount: opening}, "")
		if o.err != nil {
			return fmt.Errorf("step 2, opening deposit to %s: %w", g, o.err)
		}
		l.balance[g.name] = opening
		rows = append(rows, []string{g.String(), command(&Deposit{Amount: opening}), describe(o), r.host(g), ms(o.took)})
	}
	r.n.say("opening deposits:")
	r.n.table([]string{"account", "command", "reply", "host", "took"}, rows)

	// An overdraft is refused and changes nothing.
	g := gs[0]
	before, err := r.readBalance(ctx, g)
	if err != nil {
		return fmt.Errorf("step 2, read %s: %w", g, err)
	}
	o := r.request(ctx, g, &Withdraw{Amount: 1000}, "")
	after, err := r.readBalance(ctx, g)
	if err != nil {
		return fmt.Errorf("step 2, read %s: %w", g, err)
	}
	reply := describe(o)
	var he *actors.HandlerError
	if errors.As(o.err, &he) {
		reply += ": " + he.Message
	}
	r.n.say("%s %s -> %s; balance %d before, %d after", g, command(&Withdraw{Amount: 1000}), reply, before.Balance, after.Balance)
	r.check(errors.Is(o.err, ErrOverdraft) && proto.Equal(before, after), "bank: an overdraft is refused and changes nothing",
		"%s; balance %d -> %d, operations %d -> %d", reply, before.Balance, after.Balance, before.Operations, after.Operations)

	start := time.Now()
	r.n.say("%d clients send %d random deposits and withdrawals each ...", r.env.Clients, r.env.OpsPerClient)
	r.traffic(ctx, l, 2, r.env.OpsPerClient, nil, nil)
	took := time.Since(start)
	total := r.env.Clients * r.env.OpsPerClient
	r.n.say("%d operations in %v (%.0f/s)", total, took.Round(time.Millisecond), float64(total)/took.Seconds())
	return r.verifyAccounts(ctx, l, "step 2", nil)
}

// verifyAccounts reads every account and checks it against the ledger.
func (r *runner) verifyAccounts(ctx context.Context, l *ledger, step string, before map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	header := []string{"account", "acked ops", "refused", "ledger", "balance", "grain ops", "host"}
	if before != nil {
		header = []string{"account", "acked ops", "refused", "ledger", "balance", "grain ops", "host before", "host after"}
	}
	var rows [][]string
	ok, nonneg := true, true
	var sumLedger, sumBalance int64
	var bad []string
	for _, g := range accounts() {
		st, err := r.readBalance(ctx, g)
		if err != nil {
			return fmt.Errorf("%s, read %s: %w", step, g, err)
		}
		// The opening deposit is one of the grain's operations.
		wantOps := l.ops[g.name] + 1
		if st.Balance != l.balance[g.name] || st.Operations != wantOps {
			ok = false
			bad = append(bad, fmt.Sprintf("%s has %d after %d ops, ledger %d after %d", g, st.Balance, st.Operations, l.balance[g.name], wantOps))
		}
		nonneg = nonneg && st.Balance >= 0
		sumLedger += l.balance[g.name]
		sumBalance += st.Balance
		row := []string{g.String(), fmt.Sprint(l.ops[g.name]), fmt.Sprint(l.refused[g.name]), fmt.Sprint(l.balance[g.name]), fmt.Sprint(st.Balance), fmt.Sprint(st.Operations)}
		if before != nil {
			row = append(row, before[g.name])
		}
		rows = append(rows, append(row, r.host(g)))
	}
	r.n.table(header, rows)
	r.check(len(l.failed) == 0, step+": every request acknowledged or refused", "%d unresolved%s", len(l.failed), listBad(l.failed))
	r.check(ok, step+": balances equal the acknowledged operations", "sum of balances %d, sum of ledger %d%s", sumBalance, sumLedger, listBad(bad))
	r.check(nonneg, step+": no balance below zero", "checked %d accounts", len(accounts()))
	return nil
}

// failover is step 3: the member hosting the most grains crashes
// mid-traffic; its grains resume elsewhere with their state.
func (r *runner) failover(ctx context.Context) error {
	gs := append(accounts(), missileGrain)
	hosts := map[string]string{}
	count := map[string]int{}
	for _, g := range gs {
		h := r.host(g)
		hosts[g.name] = h
		count[h]++
	}
	var victim *Node
	for _, m := range r.env.Members {
		if victim == nil || count[m.ID] > count[victim.ID] {
			victim = m
		}
	}
	var moved []grain
	for _, g := range gs {
		if hosts[g.name] == victim.ID {
			moved = append(moved, g)
			r.report.Moved = append(r.report.Moved, g.String())
		}
	}
	r.report.Crashed = victim.ID
	r.n.heading("step 3: crash %s (hosts %d of %d grains: %s) in the middle of traffic", victim.ID, len(moved), len(gs), strings.Join(r.report.Moved, ", "))

	// Restart the ledger from the accounts' current state.
	l := newLedger()
	for _, g := range accounts() {
		st, err := r.readBalance(ctx, g)
		if err != nil {
			return fmt.Errorf("step 3, read %s: %w", g, err)
		}
		l.balance[g.name] = st.Balance
		l.ops[g.name] = st.Operations - 1
	}

	var (
		mu        sync.Mutex
		crashedAt time.Time
		resumed   = map[string]time.Time{}
		allBack   = make(chan struct{})
		warm      = make(chan struct{})
		acks      atomic.Int64
	)
	acked := func(g grain, sent, at time.Time) {
		if acks.Add(1) == 50 {
			close(warm)
		}
		mu.Lock()
		defer mu.Unlock()
		if crashedAt.IsZero() || sent.Before(crashedAt) || hosts[g.name] != victim.ID {
			return
		}
		if _, ok := resumed[g.name]; ok {
			return
		}
		resumed[g.name] = at
		if len(resumed) == len(moved) {
			close(allBack)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.traffic(ctx, l, 3, 0, stop, acked)
	}()
	tctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	select {
	case <-warm:
	case <-tctx.Done():
		close(stop)
		<-done
		return fmt.Errorf("step 3: traffic did not start: %w", tctx.Err())
	}
	r.n.say("traffic flowing (%d acknowledged); crashing %s (%s): NATS connection and actor system closed, no leave", acks.Load(), victim.ID, victim.Address())
	mu.Lock()
	crashedAt = time.Now()
	mu.Unlock()
	victim.Crash()
	var survivors []*Node
	for _, m := range r.env.Members {
		if m != victim {
			survivors = append(survivors, m)
		}
	}
	timedOut := false
	select {
	case <-allBack:
	case <-tctx.Done():
		timedOut = true
	}
	mu.Lock()
	var rows [][]string
	for _, g := range moved {
		at, ok := resumed[g.name]
		took := "never"
		if ok {
			took = ms(at.Sub(crashedAt))
			r.report.Failover = max(r.report.Failover, at.Sub(crashedAt))
		}
		rows = append(rows, []string{g.String(), victim.ID, r.host(g), took})
	}
	mu.Unlock()
	// A little more traffic on the new hosts, then stop.
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-done
	r.n.say("every grain of %s answered again from another member; failover took %v", victim.ID, r.report.Failover.Round(time.Millisecond))
	r.n.table([]string{"grain", "host before", "host after", "first reply after the crash"}, rows)
	r.check(!timedOut, "failover: every grain of the crashed member answered again", "%d grains in %v", len(moved), r.report.Failover.Round(time.Millisecond))
	moves := true
	for _, g := range moved {
		h := r.host(g)
		moves = moves && h != victim.ID && slices.ContainsFunc(survivors, func(m *Node) bool { return m.ID == h })
	}
	r.check(moves, "failover: moved grains live on surviving members", "%d grains", len(moved))

	r.n.say("members seen by the client: %d; accounts after the crash:", r.env.Client.Members())
	if err := r.verifyAccounts(ctx, l, "step 3", hosts); err != nil {
		return err
	}
	st, err := r.readLaunch(ctx)
	if err != nil {
		return fmt.Errorf("step 3, read the missile: %w", err)
	}
	o := r.request(ctx, missileGrain, &Revoke{General: "bob"}, "")
	r.n.say("missile on %s: %s; Revoke(bob) -> %s", r.host(missileGrain), describeLaunch(st), describe(o))
	r.check(launchedBy(st, "alice", "bob") && errors.Is(o.err, ErrLaunched), "missile: still launched after the crash, revocation refused",
		"%s; Revoke(bob): %s", describeLaunch(st), describe(o))
	return nil
}
