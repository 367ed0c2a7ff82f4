package actors_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the tests' randomness (0: pick one and log it)")

// testSeed returns the seed for a test and logs it.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -seed=%d)", s, s)
	return s
}

// account is the state of the bank and counter examples.
type account struct {
	Balance int64
}

// ErrOverdraft is the bank handler's refusal.
var ErrOverdraft = &actors.HandlerError{Code: "overdraft", Message: "insufficient funds"}

// bank is a handler: an Int64Value adds (or, negative, withdraws) its value
// and replies with the new balance; StringValue "panic" panics; a balance
// never goes below zero.
func bank(s account, msg proto.Message) (account, proto.Message, error) {
	switch m := msg.(type) {
	case *wrapperspb.Int64Value:
		if s.Balance+m.Value < 0 {
			return s, nil, fmt.Errorf("withdraw %d from %d: %w", -m.Value, s.Balance, ErrOverdraft)
		}
		s.Balance += m.Value
		return s, wrapperspb.Int64(s.Balance), nil
	case *wrapperspb.StringValue:
		if m.Value == "panic" {
			s.Balance = -1 << 40 // a handler that modifies its state, then panics
			panic("boom")
		}
	}
	return s, nil, fmt.Errorf("unexpected %T", msg)
}

// quiet returns an actor system that logs nothing.
func quiet(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(sys.Shutdown)
	return sys
}

// newClients returns n synod clients over one in-process cluster of three
// acceptors, with seeded backoff jitter.
func newClients(t testing.TB, tr synod.Transport, cfg synod.Config, seed uint64, n int, opts ...synod.Option) []*synod.Client {
	t.Helper()
	var cs []*synod.Client
	for i := range n {
		o := append([]synod.Option{synod.WithRand(rand.New(rand.NewPCG(seed, uint64(i))))}, opts...)
		c, err := synod.NewClient(synod.ProposerID(fmt.Sprintf("node%d", i), seed+uint64(i)), cfg, tr, o...)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// spawn spawns a bank actor named name over reg.
func spawn(t testing.TB, sys *actor.ActorSystem, reg actors.Registers, name string, opts ...actors.Option) *actor.PID {
	t.Helper()
	props, err := actors.Props(reg, bank, opts...)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := sys.Root.SpawnNamed(props, name)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// counting wraps Registers and counts rounds.
type counting struct {
	actors.Registers
	changes, reads atomic.Int64
}

func (c *counting) Change(ctx context.Context, key string, f synod.ChangeFunc) ([]byte, error) {
	c.changes.Add(1)
	return c.Registers.Change(ctx, key, f)
}

func (c *counting) Read(ctx context.Context, key string) ([]byte, error) {
	c.reads.Add(1)
	return c.Registers.Read(ctx, key)
}

// lossy wraps a transport and drops each reply with probability p, so that
// phases time out and changes end indeterminate, for real.
type lossy struct {
	synod.Transport
	mu  sync.Mutex
	rng *rand.Rand
	p   float64
}

func (l *lossy) drop() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64() < l.p
}

func (l *lossy) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	ch := make(chan synod.PrepareReply, len(to))
	go forward(ctx, l, ch, replies)
	return l.Transport.Prepare(ctx, to, req, ch)
}

func (l *lossy) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	ch := make(chan synod.AcceptReply, len(to))
	go forward(ctx, l, ch, replies)
	return l.Transport.Accept(ctx, to, req, ch)
}

func forward[T any](ctx context.Context, l *lossy, in <-chan T, out chan<- T) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-in:
			if !l.drop() {
				select {
				case out <- r:
				default:
				}
			}
		}
	}
}

// balance reads the bank actor's balance through a Query.
func balance(t testing.TB, to actors.Target) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := actors.Read[account](ctx, to, actors.WithRetry(2*time.Second))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return s.Balance
}

// add sends an Int64Value to the bank actor and returns the new balance.
func add(ctx context.Context, to actors.Target, n int64, opts ...actors.RequestOption) (int64, error) {
	res, err := actors.Request(ctx, to, wrapperspb.Int64(n), opts...)
	if err != nil {
		return 0, err
	}
	v, ok := res.(*wrapperspb.Int64Value)
	if !ok {
		return 0, fmt.Errorf("reply %T", res)
	}
	return v.Value, nil
}

func isIndeterminate(err error) bool { return errors.Is(err, synod.ErrIndeterminate) }

var _ = synodtest.NewLocalCluster

// addOnce adds 1 with request ID id, retrying with the same ID on the next of
// targets (from targets[start]) while the outcome is unknown or not applied,
// at most maxAttempts times (unbounded when 0); onRetry sees each such error.
// It returns the last attempt's error.
func addOnce(ctx context.Context, targets []actors.Target, start int, id string, maxAttempts int, onRetry func(error)) error {
	for attempt := 0; ; attempt++ {
		_, err := add(ctx, targets[(start+attempt)%len(targets)], 1, actors.WithRequestID(id))
		retry := isIndeterminate(err) || errors.Is(err, synod.ErrConflict) || errors.Is(err, synod.ErrUnavailable)
		if !retry || (maxAttempts > 0 && attempt+1 >= maxAttempts) {
			return err
		}
		onRetry(err)
	}
}
