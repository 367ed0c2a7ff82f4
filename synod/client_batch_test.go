package synod_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/metrictest"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/dedup"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// waitQueued waits until n calls of key queue behind its running round in c.
func waitQueued(t *testing.T, c *synod.Client, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for synod.Queued(c, key) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", synod.Queued(c, key), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockRound starts a change of key in c that holds the key's round inside
// its function until release is closed, and returns once it is there.
func blockRound(t *testing.T, c *synod.Client, key string) (release func(), done <-chan error) {
	return blockRoundWith(t, c, key, appendOf("0"))
}

// blockRoundWith is blockRound whose change then applies f.
func blockRoundWith(t *testing.T, c *synod.Client, key string, f synod.ChangeFunc) (release func(), done <-chan error) {
	t.Helper()
	entered, rel := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Change(context.Background(), key, func(cur []byte) ([]byte, error) {
			close(entered)
			<-rel
			return f(cur)
		})
		errc <- err
	}()
	<-entered
	return func() { close(rel) }, errc
}

func appendOf(s string) synod.ChangeFunc {
	return func(cur []byte) ([]byte, error) { return append(append([]byte(nil), cur...), s...), nil }
}

var errRefused = errors.New("refused by the function")

type outcome struct {
	v   string
	err error
}

// startQueued starts one Change per function, in order (each queued behind
// key's running round before the next starts), and returns a function that
// waits for them and returns their outcomes.
func startQueued(t *testing.T, c *synod.Client, key string, ctx context.Context, fs ...synod.ChangeFunc) func() []outcome {
	t.Helper()
	already := synod.Queued(c, key)
	out := make([]outcome, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Change(ctx, key, f)
			out[i] = outcome{string(v), err}
		}()
		waitQueued(t, c, key, already+i+1)
	}
	return func() []outcome { wg.Wait(); return out }
}

// TestClientBatchesQueuedChanges: changes queued behind a running round run
// in one round, in call order; each caller gets the value its own function
// returned; a function's error skips only that change, and its caller gets
// the value it was given.
func TestClientBatchesQueuedChanges(t *testing.T) {
	reader := metrictest.New()
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr, synod.WithMeterProvider(reader.Provider))
	release, first := blockRound(t, c, "k")
	refuse := func(cur []byte) ([]byte, error) { return nil, errRefused }
	wait := startQueued(t, c, "k", context.Background(), appendOf("a"), refuse, appendOf("b"), appendOf("c"))
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	out := wait()
	want := []outcome{{"0a", nil}, {"0a", errRefused}, {"0ab", nil}, {"0abc", nil}}
	checkOutcomes(t, out, want)
	if v, err := c.Read(context.Background(), "k"); err != nil || string(v) != "0abc" {
		t.Errorf("read = %q, %v; want 0abc", v, err)
	}
	// Two rounds of changes: the blocking one alone, then the four.
	if got := reader.Get(t, "synod.client.batch.size", metrictest.Attrs("op", "change")...); got.N != 2 || got.Sum != 5 {
		t.Errorf("batch.size: %v rounds carrying %v changes, want 2 carrying 5", got.N, got.Sum)
	}
	if got := reader.Get(t, "synod.client.change.duration", metrictest.Attrs("op", "change")...); got.N != 5 {
		t.Errorf("change.duration: %v changes, want 5", got.N)
	}
}

func checkOutcomes(t *testing.T, got, want []outcome) {
	t.Helper()
	for i := range want {
		ok := got[i].v == want[i].v && errors.Is(got[i].err, want[i].err)
		if want[i].err == nil {
			ok = ok && got[i].err == nil
		}
		if !ok {
			t.Errorf("change %d: got %q, %v; want %q, %v", i, got[i].v, got[i].err, want[i].v, want[i].err)
		}
	}
}

// TestClientBatchDropsCallersThatLeft: a caller whose context ends while it
// queues is dropped (its function never runs, ErrUnavailable); one whose
// context ends once its change is in a round gets the round's outcome.
func TestClientBatchDropsCallersThatLeft(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr)
	release, first := blockRound(t, c, "k")
	leaving, leave := context.WithCancel(context.Background())
	var ranDropped atomic.Bool
	dropped := func(cur []byte) ([]byte, error) { ranDropped.Store(true); return cur, nil }
	wait := startQueued(t, c, "k", context.Background(), appendOf("a"))
	waitDropped := startQueued(t, c, "k", leaving, dropped)
	inRound, cont := make(chan struct{}), make(chan struct{})
	staying, stay := context.WithCancel(context.Background())
	waitStaying := startQueued(t, c, "k", staying, func(cur []byte) ([]byte, error) {
		close(inRound)
		<-cont
		return appendOf("b")(cur)
	})
	leave()
	if got := waitDropped(); !errors.Is(got[0].err, synod.ErrUnavailable) || !errors.Is(got[0].err, context.Canceled) {
		t.Errorf("dropped caller: %v, want ErrUnavailable wrapping context.Canceled", got[0].err)
	}
	release()
	<-inRound
	stay() // its change is in the round already
	close(cont)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, append(wait(), waitStaying()...), []outcome{{"0a", nil}, {"0ab", nil}})
	if ranDropped.Load() {
		t.Error("the dropped caller's function ran")
	}
}

// dropAccepts delivers accepts whose value contains marker to the acceptors
// but loses every reply to them.
type dropAccepts struct {
	*synodtest.LocalTransport
	marker string
}

func (d dropAccepts) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	if strings.Contains(string(req.Value), d.marker) {
		replies = make(chan synod.AcceptReply, len(to))
	}
	return d.LocalTransport.Accept(ctx, to, req, replies)
}

// TestClientBatchIndeterminate: when a batch's round is indeterminate, so is
// every change in it, the one whose function erred included (its error was
// computed from a value that may not be the latest).
func TestClientBatchIndeterminate(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, dropAccepts{tr, "lost"})
	release, first := blockRound(t, c, "k")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	refuse := func(cur []byte) ([]byte, error) { return nil, errRefused }
	wait := startQueued(t, c, "k", ctx, appendOf("lost"), refuse, appendOf("b"))
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, o := range wait() {
		if !errors.Is(o.err, synod.ErrIndeterminate) || errors.Is(o.err, errRefused) || o.v != "" {
			t.Errorf("change %d: %q, %v; want ErrIndeterminate", i, o.v, o.err)
		}
	}
}

// markedFailures fails every Store of a value that contains marker.
type markedFailures struct {
	*synod.MemoryStorage
	marker string
}

func (s markedFailures) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	if strings.Contains(string(st.Value), s.marker) {
		return fmt.Errorf("disk: %w", synod.ErrNoSpace)
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

// TestClientBatchStorageFailure: when storage failures end a batch's round,
// every caller gets the failure, ErrIndeterminate included, since the value
// may have reached an acceptor's disk.
func TestClientBatchStorageFailure(t *testing.T) {
	var (
		acs []*synod.Acceptor
		cfg synod.Config
	)
	for i := range 3 {
		id := fmt.Sprintf("a%d", i)
		var st synod.Storage = synod.NewMemoryStorage()
		if i > 0 {
			st = markedFailures{synod.NewMemoryStorage(), "full"}
		}
		acs = append(acs, synod.NewAcceptor(id, st))
		cfg.Acceptors = append(cfg.Acceptors, id)
	}
	c := newTestClient(t, "c", cfg, synodtest.NewLocalTransport(acs...), synod.WithPhaseTimeout(time.Minute))
	release, first := blockRound(t, c, "k")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	refuse := func(cur []byte) ([]byte, error) { return nil, errRefused }
	wait := startQueued(t, c, "k", ctx, appendOf("a"), refuse, appendOf("full"))
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, o := range wait() {
		if !errors.Is(o.err, synod.ErrStorage) || !errors.Is(o.err, synod.ErrIndeterminate) || o.v != "" {
			t.Errorf("change %d: %q, %v; want ErrStorage and ErrIndeterminate", i, o.v, o.err)
		}
	}
}

// TestClientBatchExactlyOnce: dedup-wrapped changes in one batch: a replayed
// ID is skipped with dedup.ErrApplied, the others apply in order.
func TestClientBatchExactlyOnce(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr)
	w := func(sender string, seq uint64, s string) synod.ChangeFunc {
		return dedup.Wrap(dedup.ID{Sender: sender, Seq: seq}, appendOf(s), 16)
	}
	release, first := blockRoundWith(t, c, "k", w("s0", 1, "0"))
	wait := startQueued(t, c, "k", context.Background(), w("s1", 1, "a"), w("s0", 1, "0"), w("s1", 2, "b"), w("s1", 1, "a"))
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	out := wait()
	for i := range out {
		v, _, err := dedup.Unwrap([]byte(out[i].v))
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		out[i].v = string(v)
	}
	checkOutcomes(t, out, []outcome{{"0a", nil}, {"0a", dedup.ErrApplied}, {"0ab", nil}, {"0ab", dedup.ErrStale}})
}

// TestClientWithoutBatching: WithBatching(false) runs every change in a round
// of its own.
func TestClientWithoutBatching(t *testing.T) {
	reader := metrictest.New()
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr, synod.WithMeterProvider(reader.Provider), synod.WithBatching(false))
	release, first := blockRound(t, c, "k")
	wait := startQueued(t, c, "k", context.Background(), appendOf("a"), appendOf("b"), appendOf("c"))
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, wait(), []outcome{{"0a", nil}, {"0ab", nil}, {"0abc", nil}})
	if got := reader.Get(t, "synod.client.batch.size"); got.N != 4 || got.Sum != 4 {
		t.Errorf("batch.size: %v rounds carrying %v changes, want 4 carrying 4", got.N, got.Sum)
	}
}

// TestClientBatchPanic: a change function that panics is skipped like one
// that errs, the others of its batch apply, and its caller panics on its own
// goroutine; the key stays usable.
func TestClientBatchPanic(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr)
	release, first := blockRound(t, c, "k")
	wait := startQueued(t, c, "k", context.Background(), appendOf("a"))
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_, _ = c.Change(context.Background(), "k", func([]byte) ([]byte, error) { panic("boom") })
	}()
	waitQueued(t, c, "k", 2)
	waitB := startQueued(t, c, "k", context.Background(), appendOf("b"))
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if p := <-panicked; p != "boom" {
		t.Errorf("caller of the panicking function recovered %v, want boom", p)
	}
	checkOutcomes(t, append(wait(), waitB()...), []outcome{{"0a", nil}, {"0ab", nil}})
	// A lone change that panics leaves the key usable too.
	func() {
		defer func() { _ = recover() }()
		_, _ = c.Change(context.Background(), "k", func([]byte) ([]byte, error) { panic("again") })
	}()
	if v, err := c.Change(context.Background(), "k", appendOf("c")); err != nil || string(v) != "0abc" {
		t.Errorf("after the panics: %q, %v; want 0abc", v, err)
	}
}
