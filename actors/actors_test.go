package actors_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

func TestCounterManySenders(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1)[0]
	sys := quiet(t)
	to := actors.Local(sys, spawn(t, sys, reg, "counter"))

	const senders, each = 16, 25
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		acks int64
		seen = map[int64]bool{}
	)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				v, err := add(ctx, to, 1)
				if err != nil {
					t.Errorf("increment: %v", err)
					return
				}
				mu.Lock()
				acks++
				if seen[v] {
					t.Errorf("two increments both replied %d", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := balance(t, to); got != acks || acks != senders*each {
		t.Fatalf("balance = %d, acknowledged increments = %d, sent %d", got, acks, senders*each)
	}
}

func TestBankRefusalsLeaveStateUnchanged(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1)[0]
	sys := quiet(t)
	to := actors.Local(sys, spawn(t, sys, reg, "bank"))
	ctx := context.Background()

	tests := []struct {
		name    string
		msg     proto.Message
		want    int64   // balance after
		wantErr []error // errors.Is targets; nil for success
	}{
		{"deposit", wrapperspb.Int64(100), 100, nil},
		{"withdraw", wrapperspb.Int64(-30), 70, nil},
		{"overdraft", wrapperspb.Int64(-71), 70, []error{ErrOverdraft, actors.ErrHandler}},
		{"panic", wrapperspb.String("panic"), 70, []error{actors.ErrPanic, actors.ErrHandler}},
		{"unknown message", wrapperspb.Bool(true), 70, []error{actors.ErrHandler}},
		{"withdraw all", wrapperspb.Int64(-70), 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := actors.Request(ctx, to, tt.msg)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("got error %v, want reply", err)
			}
			for _, target := range tt.wantErr {
				if !errors.Is(err, target) {
					t.Errorf("got %v (reply %v), want an error matching %v", err, res, target)
				}
			}
			if err != nil {
				for _, target := range []error{synod.ErrIndeterminate, synod.ErrUnavailable, synod.ErrConflict} {
					if errors.Is(err, target) {
						t.Errorf("handler error %v matches protocol error %v", err, target)
					}
				}
				var re *actors.RequestError
				if !errors.As(err, &re) || re.ID == "" {
					t.Errorf("error %v is not a *RequestError with an ID", err)
				}
			}
			if got := balance(t, to); got != tt.want {
				t.Errorf("balance = %d, want %d", got, tt.want)
			}
		})
	}
	var overdraftOther = &actors.HandlerError{Code: "other"}
	if _, err := actors.Request(ctx, to, wrapperspb.Int64(-1)); errors.Is(err, overdraftOther) {
		t.Errorf("%v matches a HandlerError of another code", err)
	}
}

// Two activations of one register, on two actor systems with two proposers,
// as a protoactor cluster produces while its topology changes: interleaved
// increments from many senders all count exactly once, even with replies
// lost on the way from the acceptors, which makes rounds indeterminate and
// the senders retry with the same request ID.
func TestTwoActivationsOfOneKey(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	lt := &lossy{Transport: tr, rng: rand.New(rand.NewPCG(seed, 99)), p: 0.15}
	regs := newClients(t, lt, cfg, seed, 2, synod.WithPhaseTimeout(5*time.Millisecond), synod.WithBackoff(time.Millisecond, 5*time.Millisecond))
	var targets []actors.Target
	var counts []*counting
	for i := range 2 {
		sys := quiet(t)
		c := &counting{Registers: regs[i]}
		counts = append(counts, c)
		// Different actor names, one key: as two members hosting one grain.
		pid := spawn(t, sys, c, fmt.Sprintf("acct-%d", i), actors.WithKey("acct"), actors.WithRoundTimeout(40*time.Millisecond))
		targets = append(targets, actors.Local(sys, pid))
	}

	const senders, each = 8, 15
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		acks          int64
		indeterminate int // attempts that ended with an unknown outcome
		notApplied    int // attempts that ended unapplied (conflict, unavailable)
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("s%d-%d", s, i)
				// Retry with the same ID, alternating activations, until the
				// outcome is known.
				err := addOnce(ctx, targets, s+i, id, 0, func(err error) {
					mu.Lock()
					defer mu.Unlock()
					if isIndeterminate(err) {
						indeterminate++
					} else {
						notApplied++
					}
				})
				if err != nil {
					t.Errorf("increment %s: %v", id, err)
					return
				}
				mu.Lock()
				acks++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	lt.mu.Lock()
	lt.p = 0
	lt.mu.Unlock()
	got := balance(t, targets[0])
	t.Logf("acks %d; retries after %d indeterminate and %d unapplied attempts; rounds %d+%d",
		acks, indeterminate, notApplied, counts[0].changes.Load(), counts[1].changes.Load())
	if got != acks || acks != senders*each {
		t.Fatalf("balance = %d, acknowledged increments = %d, sent %d", got, acks, senders*each)
	}
	if b := balance(t, targets[1]); b != got {
		t.Fatalf("the two activations read %d and %d", got, b)
	}
}

func TestRetriedRequestAppliesOnce(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1)[0]
	sys := quiet(t)
	pid := spawn(t, sys, reg, "once")
	to := actors.Local(sys, pid)
	ctx := context.Background()

	first, err := add(ctx, to, 5, actors.WithRequestID("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := add(ctx, to, 1); err != nil { // another request in between
		t.Fatal(err)
	}
	again, err := add(ctx, to, 5, actors.WithRequestID("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if first != 5 || again != first {
		t.Errorf("replies %d then %d, want 5 twice (the recorded reply)", first, again)
	}
	// A refusal is recorded too: the retry gets the same refusal even though
	// the balance would now allow it.
	if _, err := add(ctx, to, -100, actors.WithRequestID("r2")); !errors.Is(err, ErrOverdraft) {
		t.Fatalf("got %v, want overdraft", err)
	}
	if _, err := add(ctx, to, 200); err != nil {
		t.Fatal(err)
	}
	if _, err := add(ctx, to, -100, actors.WithRequestID("r2")); !errors.Is(err, ErrOverdraft) {
		t.Fatalf("retry got %v, want the recorded overdraft", err)
	}
	// The same ID twice in one batch applies once.
	var wg sync.WaitGroup
	replies := make([]int64, 8)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := add(ctx, to, 1000, actors.WithRequestID("r3"))
			if err != nil {
				t.Error(err)
			}
			replies[i] = v
		}()
	}
	wg.Wait()
	for _, v := range replies {
		if v != replies[0] {
			t.Fatalf("replies to one request ID differ: %v", replies)
		}
	}
	if got, want := balance(t, to), int64(5+1+200+1000); got != want {
		t.Fatalf("balance = %d, want %d", got, want)
	}
}

// lostReply commits changes but reports the first N of them as
// indeterminate, as when the accept replies are lost after a quorum accepted.
type lostReply struct {
	actors.Registers
	mu   sync.Mutex
	lose int
}

func (l *lostReply) Change(ctx context.Context, key string, f synod.ChangeFunc) ([]byte, error) {
	v, err := l.Registers.Change(ctx, key, f)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.lose > 0 {
		l.lose--
		return nil, fmt.Errorf("lost the accept replies: %w", synod.ErrIndeterminate)
	}
	return v, err
}

func TestLostReply(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1)[0]
	sys := quiet(t)
	ctx := context.Background()

	t.Run("round indeterminate", func(t *testing.T) {
		lr := &lostReply{Registers: reg, lose: 1}
		to := actors.Local(sys, spawn(t, sys, lr, "lost-round"))
		_, err := add(ctx, to, 7, actors.WithRequestID("x"))
		var re *actors.RequestError
		if !isIndeterminate(err) || !errors.As(err, &re) {
			t.Fatalf("got %v, want an indeterminate *RequestError", err)
		}
		// The change did commit: the retry must get its recorded reply, not
		// apply it again.
		v, err := add(ctx, to, 7, actors.WithRequestID(re.ID))
		if err != nil || v != 7 {
			t.Fatalf("retry: %d, %v; want 7", v, err)
		}
		if got := balance(t, to); got != 7 {
			t.Fatalf("balance = %d, want 7", got)
		}
	})
	t.Run("reply lost in transit", func(t *testing.T) {
		pid := spawn(t, sys, reg, "lost-transit")
		to := actors.Local(sys, pid)
		// Deliver the message with its ID but nobody to answer: the sender
		// never hears back.
		env := &actor.MessageEnvelope{Message: wrapperspb.Int64(3)}
		env.SetHeader(actors.RequestIDHeader, "y")
		sys.Root.Send(pid, env)
		v, err := add(ctx, to, 3, actors.WithRequestID("y"))
		if err != nil || v != 3 {
			t.Fatalf("retry: %d, %v; want 3", v, err)
		}
		if got := balance(t, to); got != 3 {
			t.Fatalf("balance = %d, want 3", got)
		}
	})
	t.Run("WithRetry", func(t *testing.T) {
		lr := &lostReply{Registers: reg, lose: 3}
		to := actors.Local(sys, spawn(t, sys, lr, "lost-retry"))
		v, err := add(ctx, to, 4, actors.WithRetry(time.Second))
		if err != nil || v != 4 {
			t.Fatalf("got %d, %v; want 4", v, err)
		}
		if got := balance(t, to); got != 4 {
			t.Fatalf("balance = %d, want 4", got)
		}
	})
}

// The dedup window is bounded: an ID older than the window applies again.
func TestDedupWindowIsBounded(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1)[0]
	sys := quiet(t)
	to := actors.Local(sys, spawn(t, sys, reg, "window", actors.WithDedupWindow(4)))
	ctx := context.Background()
	for i := range 6 {
		if _, err := add(ctx, to, 1, actors.WithRequestID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := add(ctx, to, 1, actors.WithRequestID("5")); err != nil || v != 6 {
		t.Fatalf("retry of a recent ID: %d, %v; want the recorded 6", v, err)
	}
	if v, err := add(ctx, to, 1, actors.WithRequestID("0")); err != nil || v != 7 {
		t.Fatalf("retry of an ID past the window: %d, %v; want it applied again (7)", v, err)
	}
}

// Many concurrent senders to one hot actor: fewer rounds than messages, and
// every sender gets the reply of its own message.
func TestBatchingHotActor(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := &counting{Registers: newClients(t, tr, cfg, seed, 1)[0]}
	sys := quiet(t)
	to := actors.Local(sys, spawn(t, sys, reg, "hot"))

	const senders, each = 64, 8
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		replies []int64
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				amount := int64(s*each + i + 1) // distinct amounts
				v, err := add(ctx, to, amount)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				replies = append(replies, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	const n = senders * each
	rounds := reg.changes.Load()
	t.Logf("%d messages in %d rounds (%.1f per round)", n, rounds, float64(n)/float64(rounds))
	if rounds >= n {
		t.Errorf("%d rounds for %d messages: no batching", rounds, n)
	}
	// Replies are running balances: sorted, each differs from the previous
	// by one of the amounts, and the amounts are used exactly once.
	sort.Slice(replies, func(i, j int) bool { return replies[i] < replies[j] })
	used := make(map[int64]bool)
	prev := int64(0)
	for _, v := range replies {
		d := v - prev
		if d < 1 || d > n || used[d] {
			t.Fatalf("reply %d after %d: step %d is not an unused amount", v, prev, d)
		}
		used[d] = true
		prev = v
	}
	if want := int64(n * (n + 1) / 2); prev != want || balance(t, to) != want {
		t.Fatalf("final balance %d, want %d", prev, want)
	}
}

// A protobuf state uses the protobuf codec; a register written by one codec
// is refused by another.
func TestProtobufStateAndCodecMismatch(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1)[0]
	sys := quiet(t)
	ctx := context.Background()

	h := func(s *wrapperspb.Int64Value, msg proto.Message) (*wrapperspb.Int64Value, proto.Message, error) {
		s.Value += msg.(*wrapperspb.Int64Value).GetValue()
		return s, wrapperspb.Int64(s.Value), nil
	}
	props, err := actors.Props(reg, h, actors.WithKey("shared"))
	if err != nil {
		t.Fatal(err)
	}
	to := actors.Local(sys, sys.Root.Spawn(props))
	for range 3 {
		if _, err := add(ctx, to, 2); err != nil {
			t.Fatal(err)
		}
	}
	st, err := actors.Read[*wrapperspb.Int64Value](ctx, to)
	if err != nil || st.GetValue() != 6 {
		t.Fatalf("read %v, %v; want 6", st, err)
	}
	// The same register through the msgpack bank handler.
	other := actors.Local(sys, spawn(t, sys, reg, "msgpack-view", actors.WithKey("shared")))
	if _, err := add(ctx, other, 1); !errors.Is(err, actors.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid for a protobuf state under msgpack", err)
	}
	if st, err := actors.Read[*wrapperspb.Int64Value](ctx, to); err != nil || st.GetValue() != 6 {
		t.Fatalf("after the refused message: %v, %v; want 6", st, err)
	}
}

func TestPropsValidation(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, 1, 1)[0]
	tests := []struct {
		name string
		reg  actors.Registers
		h    actors.Handler[account]
		opts []actors.Option
	}{
		{"nil registers", nil, bank, nil},
		{"nil handler", reg, nil, nil},
		{"zero window", reg, bank, []actors.Option{actors.WithDedupWindow(0)}},
		{"zero batch", reg, bank, []actors.Option{actors.WithMaxBatch(0)}},
		{"zero timeout", reg, bank, []actors.Option{actors.WithRoundTimeout(0)}},
		{"nil codec", reg, bank, []actors.Option{actors.WithCodec(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := actors.Props(tt.reg, tt.h, tt.opts...); !errors.Is(err, actors.ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestProtocolErrorsReachTheSender(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1, synod.WithPhaseTimeout(5*time.Millisecond))[0]
	sys := quiet(t)
	pid := spawn(t, sys, reg, "cut-off", actors.WithRoundTimeout(50*time.Millisecond))
	to := actors.Local(sys, pid)
	tr.Isolate("a0")
	tr.Isolate("a1")
	_, err := add(context.Background(), to, 1)
	if !errors.Is(err, synod.ErrUnavailable) || errors.Is(err, actors.ErrHandler) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	tr.Heal()
	if v, err := add(context.Background(), to, 1); err != nil || v != 1 {
		t.Fatalf("after healing: %d, %v; want 1 (the failed message was not applied)", v, err)
	}

	// A message that is not a protobuf message gets an ErrorReply.
	res, err := sys.Root.RequestFuture(pid, "not a protobuf message", 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	rep, ok := res.(*actors.ErrorReply)
	if !ok || !errors.Is(rep.Err(), actors.ErrInvalid) {
		t.Fatalf("reply %v, want an ErrorReply matching ErrInvalid", res)
	}

	// A stopped actor is not there to deliver to.
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := add(context.Background(), to, 1); !errors.Is(err, actors.ErrNoActor) {
		t.Fatalf("got %v, want ErrNoActor", err)
	}
}

// recommit is a register store that runs the change function twice and
// commits the first run's result, as synod does when a retry finds its own
// earlier result accepted. The second run runs on a state that differs from
// the first's (here, the first's result, without its request ID so that it
// is not a duplicate), so its replies differ.
type recommit struct {
	mu sync.Mutex
	v  map[string][]byte
}

func (r *recommit) Change(_ context.Context, key string, f synod.ChangeFunc) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first, err := f(r.v[key])
	if err != nil {
		return r.v[key], err
	}
	if e, ok := stripIDs(first); ok {
		_, _ = f(e) // its result loses
	}
	r.v[key] = first
	return first, nil
}

func (r *recommit) Read(_ context.Context, key string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.v[key], nil
}

// The reply is the accepted run's, not the latest run's.
func TestReplyComesFromTheAcceptedRun(t *testing.T) {
	sys := quiet(t)
	to := actors.Local(sys, spawn(t, sys, &recommit{v: map[string][]byte{}}, "recommit"))
	for i := range 3 {
		v, err := add(context.Background(), to, 5)
		if want := int64(5 * (i + 1)); err != nil || v != want {
			t.Fatalf("reply %d, %v; want %d (the second run would say %d)", v, err, want, want+5)
		}
	}
}

// stripIDs returns the register value v with no recorded request IDs. It
// knows the envelope's layout: an array whose last element is the window.
func stripIDs(v []byte) ([]byte, bool) {
	var fields []any
	if err := msgpack.Unmarshal(v, &fields); err != nil || len(fields) == 0 {
		return nil, false
	}
	fields[len(fields)-1] = []any{}
	b, err := msgpack.Marshal(fields)
	return b, err == nil
}

// A protobuf state replied as itself is not changed by the next messages of
// its batch before the reply goes out.
func TestStateRepliedAsItself(t *testing.T) {
	seed := testSeed(t)
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	reg := newClients(t, tr, cfg, seed, 1)[0]
	sys := quiet(t)
	h := func(s *wrapperspb.Int64Value, msg proto.Message) (*wrapperspb.Int64Value, proto.Message, error) {
		s.Value++
		return s, s, nil
	}
	props, err := actors.Props(reg, h)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := sys.Root.SpawnNamed(props, "self-reply")
	if err != nil {
		t.Fatal(err)
	}
	to := actors.Local(sys, pid)
	const n = 64
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[int64]bool{}
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := add(context.Background(), to, 1)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[v] {
				t.Errorf("two senders got %d", v)
			}
			seen[v] = true
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct replies, want %d", len(seen), n)
	}
}
