package synod_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// settleGoroutines waits until the number of goroutines falls back to base,
// so a test fails if it leaks one (a transport goroutine stuck on a reply
// channel, a timer goroutine, ...).
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, started with %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newTestClient(t *testing.T, name string, cfg synod.Config, tr synod.Transport, opts ...synod.Option) *synod.Client {
	t.Helper()
	seed := uint64(len(name))
	t.Logf("client %s: jitter seed %d", name, seed)
	opts = append([]synod.Option{
		synod.WithPhaseTimeout(50 * time.Millisecond),
		synod.WithBackoff(time.Millisecond, 5*time.Millisecond),
		synod.WithRand(rand.New(rand.NewPCG(seed, 1))),
	}, opts...)
	c, err := synod.NewClient(synod.ProposerID(name, 1), cfg, tr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientChangeAndRead(t *testing.T) {
	base := runtime.NumGoroutine()
	tr, cfg, stores := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr)
	ctx := context.Background()
	for i := 1; i <= 5; i++ {
		v, err := c.Change(ctx, "k", incr)
		if err != nil {
			t.Fatal(err)
		}
		if want := string(rune('0' + i)); string(v) != want {
			t.Fatalf("change %d returned %q, want %q", i, v, want)
		}
	}
	if v, err := c.Read(ctx, "k"); err != nil || string(v) != "5" {
		t.Fatalf("Read = %q, %v; want 5", v, err)
	}
	if v, err := c.Read(ctx, "empty"); err != nil || v != nil {
		t.Fatalf("Read of an empty register = %q, %v; want nil, nil", v, err)
	}
	// Every acceptor of a quorum durably holds the value.
	holders := 0
	for _, s := range stores {
		if st, _ := s.Load(ctx, "k"); string(st.Value) == "5" {
			holders++
		}
	}
	if holders < cfg.Q2() {
		t.Errorf("%d acceptors hold the value, want at least %d", holders, cfg.Q2())
	}
	settleGoroutines(t, base)
}

// A change function's error is returned unchanged with the register's value,
// after that value was written back through a quorum.
func TestClientChangeError(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr)
	ctx := context.Background()
	if _, err := c.Change(ctx, "k", set("v")); err != nil {
		t.Fatal(err)
	}
	errNo := errors.New("no")
	v, err := c.Change(ctx, "k", func([]byte) ([]byte, error) { return []byte("x"), errNo })
	if err != errNo || string(v) != "v" {
		t.Fatalf("Change = %q, %v; want v and the change function's error itself", v, err)
	}
}

func TestClientInvalidCalls(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr)
	ctx := context.Background()
	if _, err := c.Change(ctx, "", incr); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Errorf("empty key: %v, want ErrInvalidRequest", err)
	}
	if _, err := c.Change(ctx, "k", nil); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Errorf("nil change function: %v, want ErrInvalidRequest", err)
	}
	bad := []struct {
		name string
		opts []synod.Option
		tr   synod.Transport
	}{
		{"nil transport", nil, nil},
		{"zero phase timeout", []synod.Option{synod.WithPhaseTimeout(0)}, tr},
		{"negative default timeout", []synod.Option{synod.WithDefaultTimeout(-1)}, tr},
		{"inverted backoff", []synod.Option{synod.WithBackoff(time.Second, time.Millisecond)}, tr},
		{"zero max batch", []synod.Option{synod.WithMaxBatch(0)}, tr},
	}
	for _, b := range bad {
		if _, err := synod.NewClient("p", cfg, b.tr, b.opts...); !errors.Is(err, synod.ErrInvalidConfig) {
			t.Errorf("%s: NewClient = %v, want ErrInvalidConfig", b.name, err)
		}
	}
	if _, err := synod.NewClient("p", synod.Config{Acceptors: []string{"a", "a"}}, tr); !errors.Is(err, synod.ErrInvalidConfig) {
		t.Errorf("duplicate acceptors: NewClient = %v, want ErrInvalidConfig", err)
	}
}

// The client rides out a minority of unreachable acceptors, returns within its
// deadline with a definite or indeterminate error when a majority is gone, and
// works again once the network heals; it leaks no goroutines on the way.
func TestClientPartitions(t *testing.T) {
	base := runtime.NumGoroutine()
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	fresh := newTestClient(t, "fresh", cfg, tr, synod.WithProposerOptions(synod.WithFastPath(false)))
	fast := newTestClient(t, "fast", cfg, tr)
	ctx := context.Background()
	// Each client has its own key: a stale fast-path entry of a key another
	// proposer has changed meanwhile ends indeterminate while an acceptor is
	// unreachable (its late refusal never comes), which is not what this
	// test is about.
	keys := map[*synod.Client]string{fresh: "f", fast: "k"}
	if _, err := fast.Change(ctx, keys[fast], incr); err != nil {
		t.Fatal(err)
	}

	tr.Isolate("a2")
	for _, c := range []*synod.Client{fresh, fresh, fast, fast} {
		if _, err := c.Change(ctx, keys[c], incr); err != nil {
			t.Fatalf("%s: with one of three acceptors isolated: %v", c.ID(), err)
		}
	}

	tr.Isolate("a1")
	const deadline = 300 * time.Millisecond
	tests := []struct {
		c    *synod.Client
		want error
	}{
		// Its prepare never reaches a quorum: the change did not happen.
		{fresh, synod.ErrUnavailable},
		// Its fast-path accept carried the result to a0: it may have happened.
		{fast, synod.ErrIndeterminate},
	}
	for _, tt := range tests {
		cctx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		_, err := tt.c.Change(cctx, keys[tt.c], incr)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: with two of three isolated: %v, want %v", tt.c.ID(), err, tt.want)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: error %v does not wrap the context's", tt.c.ID(), err)
		}
		if took > deadline+2*time.Second {
			t.Errorf("%s: returned after %v, deadline %v", tt.c.ID(), took, deadline)
		}
	}
	// Without a deadline of its own a change still ends, at the default.
	bounded := newTestClient(t, "bounded", cfg, tr, synod.WithDefaultTimeout(100*time.Millisecond))
	if _, err := bounded.Read(ctx, "k"); !errors.Is(err, synod.ErrUnavailable) {
		t.Errorf("read without deadline: %v, want ErrUnavailable", err)
	}

	tr.Heal()
	v, err := fresh.Change(ctx, "f", incr)
	if err != nil || string(v) != "3" {
		t.Fatalf("after healing: %q, %v; want 3 (the failed change was not applied)", v, err)
	}
	// Three increments succeeded before the partition and one after; the
	// indeterminate one may or may not have landed.
	v, err = fast.Change(ctx, "k", incr)
	if err != nil {
		t.Fatalf("fast client after healing: %v", err)
	}
	if got := string(v); got != "4" && got != "5" {
		t.Errorf("value after healing = %q, want 4 or 5", got)
	}
	settleGoroutines(t, base)
}

// A change waiting behind another change of the same key on the same client
// gives up when its context ends, without running.
func TestClientQueuedChangeHonoursContext(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, "c", cfg, tr)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Change(context.Background(), "k", func(cur []byte) ([]byte, error) {
			close(entered)
			<-release
			return cur, nil
		})
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ran := false
	_, err := c.Change(ctx, "k", func(cur []byte) ([]byte, error) { ran = true; return cur, nil })
	if !errors.Is(err, synod.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Errorf("queued change = %v (ran=%v), want ErrUnavailable wrapping the deadline, not run", err, ran)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
