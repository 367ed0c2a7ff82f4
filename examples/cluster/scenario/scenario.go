package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod"
)

// ErrInvariant is returned by Run when a check failed; the Report lists
// which.
var ErrInvariant = errors.New("scenario: invariant violated")

// Env is what Run drives.
type Env struct {
	// Client sends every request of the scenario (a cluster client, or any
	// member that Members does not list).
	Client *Node
	// Members are the cluster members. Step 3 crashes one of them; with no
	// Members, Run skips step 3.
	Members []*Node
	// Out receives the narration (nil: discarded).
	Out io.Writer
	// Seed seeds the traffic.
	Seed uint64
	// RunID suffixes the grains' identities, so that runs against the same
	// acceptors use fresh grains. Empty: derived from the clock.
	RunID string
	// Start is when the narration's clock started (zero: when Run starts).
	Start time.Time
	// Clients is how many concurrent clients send traffic (default 4).
	Clients int
	// OpsPerClient is how many operations each client sends in step 2
	// (default 40).
	OpsPerClient int
}

// Check is one invariant Run verified.
type Check struct {
	// Name says what was checked.
	Name string
	// OK is whether it held.
	OK bool
	// Detail says what was seen.
	Detail string
}

// Report is the outcome of Run.
type Report struct {
	// Checks are the invariants verified, in order.
	Checks []Check
	// Crashed is the ID of the member step 3 crashed ("" if skipped).
	Crashed string
	// Moved lists the grains that were on the crashed member.
	Moved []string
	// Failover is the time from the crash until every grain that was on
	// the crashed member had answered again from another member.
	Failover time.Duration
	// Ops counts the acknowledged operations of all steps.
	Ops int
	// Retried counts requests that were sent again with the same request ID
	// after an indeterminate outcome or no reply.
	Retried int
}

// Failed returns the checks that did not hold.
func (r Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

const (
	// AttemptTimeout bounds one attempt of a request; a timed-out attempt
	// is retried with the same request ID.
	AttemptTimeout = 2 * time.Second
	// opTimeout bounds one request with all its retries.
	opTimeout = 30 * time.Second
	// opening is every account's first deposit.
	opening = 100
)

var generals = []string{"alice", "bob", "carol"}
var holders = []string{"ada", "bea", "cyd", "dov", "eli", "fay"}

// runner holds the state of one Run.
type runner struct {
	env    Env
	n      *narrator
	report Report
	mu     sync.Mutex
}

// Run runs the narrated scenario: the missile launch state machine (step
// 1), bank accounts under concurrent traffic (step 2) and, with Members,
// the crash of the member hosting the most grains mid-traffic (step 3). It
// returns the report and ErrInvariant if a check failed, or another error if
// the scenario could not run.
func Run(ctx context.Context, env Env) (Report, error) {
	if env.Client == nil {
		return Report{}, fmt.Errorf("%w: no client node", ErrInvalidConfig)
	}
	if env.Out == nil {
		env.Out = io.Discard
	}
	if env.Clients <= 0 {
		env.Clients = 4
	}
	if env.OpsPerClient <= 0 {
		env.OpsPerClient = 40
	}
	if env.RunID == "" {
		env.RunID = fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	}
	if env.Start.IsZero() {
		env.Start = time.Now()
	}
	r := &runner{env: env, n: &narrator{w: env.Out, start: env.Start}}
	r.n.say("run %s, seed %d, %d concurrent clients; client node %s", env.RunID, env.Seed, env.Clients, env.Client.Address())
	steps := []func(context.Context) error{r.missile, r.bank}
	if len(env.Members) > 1 {
		steps = append(steps, r.failover)
	} else {
		r.n.say("step 3 (crash a member) runs only with -role all, where this process owns the members")
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return r.report, err
		}
	}
	r.n.heading("invariants")
	rows := make([][]string, 0, len(r.report.Checks))
	for _, c := range r.report.Checks {
		v := "ok"
		if !c.OK {
			v = "FAILED"
		}
		rows = append(rows, []string{v, c.Name, c.Detail})
	}
	r.n.table([]string{"result", "invariant", "seen"}, rows)
	if f := r.report.Failed(); len(f) > 0 {
		r.n.say("%d of %d invariants FAILED", len(f), len(r.report.Checks))
		return r.report, fmt.Errorf("%w: %d of %d checks failed, first: %s (%s)", ErrInvariant, len(f), len(r.report.Checks), f[0].Name, f[0].Detail)
	}
	r.n.say("all %d invariants held; %d operations acknowledged, %d retried with their request ID", len(r.report.Checks), r.report.Ops, r.report.Retried)
	return r.report, nil
}

// check records an invariant.
func (r *runner) check(ok bool, name, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Checks = append(r.report.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// grain names one grain of this run.
type grain struct{ kind, name string }

func (g grain) identity(run string) string { return g.name + "-" + run }
func (g grain) String() string             { return g.kind + "/" + g.name }

// outcome is what became of one request.
type outcome struct {
	reply   proto.Message
	err     error // nil, a refusal (matches actors.ErrHandler) or a failure
	retries int
	took    time.Duration
	id      string
}

func (o outcome) refused() bool { return o.err != nil && errors.Is(o.err, actors.ErrHandler) }

// undecided reports an outcome that may or may not have applied.
func (o outcome) undecided() bool { return o.err != nil && errors.Is(o.err, synod.ErrIndeterminate) }

// request sends msg to g with request ID id (new if empty), retrying with
// the same ID after any outcome that leaves the message unapplied or
// undecided, so that it applies at most once.
func (r *runner) request(ctx context.Context, g grain, msg proto.Message, id string) outcome {
	if id == "" {
		id = actors.NewRequestID()
	}
	start := time.Now()
	o := outcome{id: id}
	target := actors.Grain(r.env.Client.Cluster, g.identity(r.env.RunID), g.kind)
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	for {
		o.reply, o.err = Attempt(octx, target, msg, id)
		if o.err == nil || o.refused() || octx.Err() != nil || !Retryable(o.err) {
			break
		}
		o.retries++
		select {
		case <-octx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	o.took = time.Since(start)
	r.mu.Lock()
	r.report.Retried += o.retries
	if o.err == nil {
		r.report.Ops++
	}
	r.mu.Unlock()
	return o
}

// Attempt sends msg to target once with request ID id and waits at most
// AttemptTimeout for the reply.
// actors.Request looks a grain up before it sends, and protoactor's lookup
// waits up to 5s for a member that may have crashed, whatever the context
// says: attempt stops waiting at its deadline and leaves that request
// behind. It carries the same request ID as the retry that follows it, so
// the grain applies the message at most once whichever copy arrives.
func Attempt(ctx context.Context, target actors.Target, msg proto.Message, id string) (proto.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	type result struct {
		reply proto.Message
		err   error
	}
	done := make(chan result, 1)
	go func() {
		defer cancel()
		reply, err := actors.Request(ctx, target, msg, actors.WithRequestID(id))
		done <- result{reply, err}
	}()
	select {
	case res := <-done:
		return res.reply, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w (%w)", target, actors.ErrNoReply, synod.ErrIndeterminate)
	}
}

// Retryable reports outcomes after which a message may be sent again with
// the same request ID: not applied, or undecided.
func Retryable(err error) bool {
	for _, e := range []error{synod.ErrIndeterminate, synod.ErrUnavailable, synod.ErrConflict, actors.ErrNoActor, actors.ErrStopped} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// describe renders a reply or error for the narration.
func describe(o outcome) string {
	switch {
	case o.refused():
		var he *actors.HandlerError
		if errors.As(o.err, &he) && he.Code != "" {
			return "refused (" + he.Code + ")"
		}
		return "refused: " + o.err.Error()
	case o.err != nil:
		return "error: " + o.err.Error()
	}
	switch m := o.reply.(type) {
	case *LaunchState:
		return describeLaunch(m)
	case *Balance:
		return fmt.Sprintf("balance %d", m.Balance)
	}
	return fmt.Sprintf("%v", o.reply)
}

func describeLaunch(s *LaunchState) string {
	if s.GetLaunched() {
		return "LAUNCHED by " + strings.Join(s.GetLaunchedBy(), "+")
	}
	return fmt.Sprintf("%d of %d signatures", len(s.GetSigned()), SignaturesToLaunch)
}

// host returns the ID of the member hosting g's activation ("?" if none).
func (r *runner) host(g grain) string {
	pid := r.env.Client.Cluster.Get(g.identity(r.env.RunID), g.kind)
	if pid == nil {
		return "?"
	}
	for _, m := range r.env.Members {
		if m.Address() == pid.Address {
			return m.ID
		}
	}
	return pid.Address
}

// readLaunch reads the missile's state.
func (r *runner) readLaunch(ctx context.Context) (*LaunchState, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	s, err := actors.Read[*LaunchState](ctx, actors.Grain(r.env.Client.Cluster, missileGrain.identity(r.env.RunID), MissileKind), actors.WithRetry(AttemptTimeout))
	if s == nil {
		s = &LaunchState{}
	}
	return s, err
}

// readBalance reads an account's state.
func (r *runner) readBalance(ctx context.Context, g grain) (*Balance, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	s, err := actors.Read[*Balance](ctx, actors.Grain(r.env.Client.Cluster, g.identity(r.env.RunID), AccountKind), actors.WithRetry(AttemptTimeout))
	if s == nil {
		s = &Balance{}
	}
	return s, err
}

// newRand returns the traffic randomness of one client.
func (r *runner) newRand(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(r.env.Seed, stream))
}

// Show prints the state of the grains of run env.RunID (the run ID that
// Run printed) and the member that hosts each now, activating them where
// needed: after a member crashed, its grains answer from another member
// with the state they had.
func Show(ctx context.Context, env Env) error {
	if env.Client == nil || env.RunID == "" {
		return fmt.Errorf("%w: Show needs a client node and a run ID", ErrInvalidConfig)
	}
	if env.Out == nil {
		env.Out = io.Discard
	}
	if env.Start.IsZero() {
		env.Start = time.Now()
	}
	r := &runner{env: env, n: &narrator{w: env.Out, start: env.Start}}
	r.n.say("grains of run %s, as the cluster (%d members) serves them now:", env.RunID, env.Client.Members())
	var rows [][]string
	for _, g := range accounts() {
		t := time.Now()
		st, err := r.readBalance(ctx, g)
		if err != nil {
			return fmt.Errorf("read %s: %w", g, err)
		}
		rows = append(rows, []string{g.String(), fmt.Sprintf("balance %d after %d operations", st.Balance, st.Operations), r.host(g), ms(time.Since(t))})
	}
	t := time.Now()
	st, err := r.readLaunch(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", missileGrain, err)
	}
	rows = append(rows, []string{missileGrain.String(), describeLaunch(st), r.host(missileGrain), ms(time.Since(t))})
	r.n.table([]string{"grain", "state", "host", "took"}, rows)
	return nil
}
