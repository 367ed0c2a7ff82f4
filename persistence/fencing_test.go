package persistence

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// activation is one running incarnation chain of the actor "acct" on one node:
// its own actor system, synod client and provider.
type activation struct {
	name string
	sys  *actor.ActorSystem
	pid  *actor.PID
}

func newActivation(t *testing.T, tr synod.Transport, cfg synod.Config, node string, opts ...Option) *activation {
	t.Helper()
	p, err := NewProvider(newTestClient(t, tr, cfg, node), opts...)
	if err != nil {
		t.Fatal(err)
	}
	sys := newActorSystem(t)
	pid, err := sys.Root.SpawnNamed(journalProps(p), "acct")
	if err != nil {
		t.Fatal(err)
	}
	a := &activation{name: node, sys: sys, pid: pid}
	queryView(t, sys, pid) // wait for recovery
	return a
}

// send sends v and returns nil on ack or the nack's reason as an error.
func (a *activation) send(t testing.TB, v string) error {
	t.Helper()
	nackErr, err := a.try(v)
	if err != nil {
		t.Fatal(err)
	}
	return nackErr
}

// try sends v. It returns nil, nil on ack and the nack's reason as nackErr;
// err reports a failed request or an unexpected reply. It is safe to call
// from any goroutine.
func (a *activation) try(v string) (nackErr, err error) {
	r, err := a.sys.Root.RequestFuture(a.pid, wrapperspb.String(v), requestTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: send %s: %w", a.name, v, err)
	}
	switch r := r.(type) {
	case *ack:
		return nil, nil
	case *nack:
		if e, ok := r.reason.(error); ok {
			return e, nil
		}
		return nil, fmt.Errorf("%s: send %s: nack reason %T %v is not an error", a.name, v, r.reason, r.reason)
	default:
		return nil, fmt.Errorf("%s: send %s: unexpected reply %T", a.name, v, r)
	}
}

func (a *activation) state(t testing.TB) []string {
	t.Helper()
	return queryView(t, a.sys, a.pid).state
}

// TestFencingTwoActivations runs two activations of one persistent actor on
// two nodes (actor systems, clients, providers) over the same acceptors. The
// stale one's PersistEvent panics with ErrFenced; the supervisor restarts it,
// and it recovers every event either activation had acknowledged.
func TestFencingTwoActivations(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	a := newActivation(t, tr, cfg, "node-a", WithSnapshotInterval(3))
	b := newActivation(t, tr, cfg, "node-b", WithSnapshotInterval(3))

	mustAck := func(x *activation, v string) {
		t.Helper()
		if err := x.send(t, v); err != nil {
			t.Fatalf("%s send %s: %v", x.name, v, err)
		}
	}
	mustFence := func(x *activation, v string) {
		t.Helper()
		err := x.send(t, v)
		var oe *OpError
		if !errors.Is(err, ErrFenced) || !errors.As(err, &oe) || oe.Op != "PersistEvent" || oe.Actor != "acct" {
			t.Fatalf("%s send %s: %v; want a PersistEvent acct panic wrapping ErrFenced", x.name, v, err)
		}
	}
	mustState := func(x *activation, want ...string) {
		t.Helper()
		if got := x.state(t); !slices.Equal(got, want) {
			t.Fatalf("%s state %v, want %v", x.name, got, want)
		}
	}

	mustAck(a, "a1")
	mustFence(b, "b1") // b recovered before a1
	mustState(b, "a1") // restarted and recovered
	mustAck(b, "b2")
	mustAck(b, "b3") // index 2: a snapshot request too
	mustFence(a, "a2")
	mustState(a, "a1", "b2", "b3")
	mustAck(a, "a3")
	mustFence(b, "b4")
	mustState(b, "a1", "b2", "b3", "a3")

	// Now both write at once, in rounds: in each round each writer sends its
	// next value concurrently with the other, so most rounds fence one of
	// them. After a nack the writer asks its restarted activation whether the
	// value was persisted: not after ErrFenced, maybe after ErrIndeterminate,
	// and always when only the snapshot that followed the event failed. It
	// sends the value again only if it is missing. Every acknowledged value
	// must be in the final state once, in each writer's order.
	const n = 20
	next := map[*activation]int{}
	reasons := map[string]int{}
	for round := 0; next[a] < n || next[b] < n; round++ {
		if round > 20*n {
			t.Fatalf("no progress after %d rounds: %v", round, next)
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			nack = map[*activation]error{}
		)
		for _, x := range []*activation{a, b} {
			if next[x] == n {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				nackErr, err := x.try(fmt.Sprintf("%s-%d", x.name, next[x]))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				nack[x] = nackErr
				mu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for x, err := range nack {
			v := fmt.Sprintf("%s-%d", x.name, next[x])
			var oe *OpError
			switch {
			case err == nil:
				next[x]++
				continue
			case !errors.As(err, &oe):
				t.Fatalf("%s send %s: nack %v is not an *OpError", x.name, v, err)
			case errors.Is(err, ErrFenced):
				reasons["fenced"]++
			case errors.Is(err, synod.ErrIndeterminate):
				reasons[oe.Op+" indeterminate"]++
			case errors.Is(err, synod.ErrConflict):
				reasons[oe.Op+" conflict"]++
			default:
				t.Fatalf("%s send %s: %v", x.name, v, err)
			}
			if slices.Contains(x.state(t), v) {
				next[x]++
			}
		}
	}
	t.Logf("nacks during %d concurrent acknowledged writes: %v", 2*n, reasons)
	if reasons["fenced"] == 0 {
		t.Errorf("no activation was fenced in %d concurrent rounds", 2*n)
	}

	fresh := newActivation(t, tr, cfg, "node-c")
	got := fresh.state(t)
	if len(got) != 4+2*n {
		t.Fatalf("final state has %d values, want %d: %v", len(got), 4+2*n, got)
	}
	if want := []string{"a1", "b2", "b3", "a3"}; !slices.Equal(got[:4], want) {
		t.Fatalf("state starts %v, want %v", got[:4], want)
	}
	for _, x := range []*activation{a, b} {
		var mine, want []string
		for _, v := range got {
			if strings.HasPrefix(v, x.name+"-") {
				mine = append(mine, v)
			}
		}
		for i := range n {
			want = append(want, fmt.Sprintf("%s-%d", x.name, i))
		}
		if !slices.Equal(mine, want) {
			t.Errorf("%s's values in the final state: %v, want %v", x.name, mine, want)
		}
	}
	// Both old activations agree once they have recovered.
	for _, x := range []*activation{a, b} {
		x.sys.Root.Send(x.pid, &crash{})
		if s := x.state(t); !slices.Equal(s, got) {
			t.Errorf("%s recovered %v, want %v", x.name, s, got)
		}
	}
}

// TestActorUnavailable isolates a quorum of acceptors: a persisting actor's
// request fails within the timeout with a panic wrapping a synod quorum
// error (the sender sees it through the test actor's nack), recovery of a new
// actor fails the same way, and both recover once the acceptors are back.
func TestActorUnavailable(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	p, err := NewProvider(newTestClient(t, tr, cfg, "n0", synod.WithPhaseTimeout(50*time.Millisecond)), WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	sys := newActorSystem(t)
	failures := make(chan *OpError, 100)
	sub := sys.EventStream.Subscribe(func(evt interface{}) {
		if e, ok := evt.(*actor.SupervisorEvent); ok {
			if oe, ok := e.Reason.(*OpError); ok {
				select {
				case failures <- oe:
				default:
				}
			}
		}
	})
	defer sys.EventStream.Unsubscribe(sub)
	pid, err := sys.Root.SpawnNamed(journalProps(p), "acct")
	if err != nil {
		t.Fatal(err)
	}
	if r := request(t, sys, pid, wrapperspb.String("before")); describe(r) != "ack" {
		t.Fatalf("send before the outage: %s", describe(r))
	}

	tr.Isolate("a0")
	tr.Isolate("a2")
	start := time.Now()
	r, ok := request(t, sys, pid, wrapperspb.String("during")).(*nack)
	took := time.Since(start)
	if !ok {
		t.Fatalf("send during the outage: got %s, want a nack", describe(r))
	}
	err, _ = r.reason.(error)
	if !errors.Is(err, synod.ErrUnavailable) && !errors.Is(err, synod.ErrIndeterminate) {
		t.Fatalf("send during the outage: reason %v, want synod.ErrUnavailable or ErrIndeterminate", r.reason)
	}
	if took > 10*timeout {
		t.Fatalf("the failing send took %v with a timeout of %v", took, timeout)
	}
	t.Logf("send during the outage failed after %v: %v", took.Round(time.Millisecond), err)

	// A new actor cannot recover: its Started handler panics.
	fresh, err := sys.Root.SpawnNamed(journalProps(p), "fresh")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(requestTimeout)
	for sawRecovery := false; !sawRecovery; {
		select {
		case oe := <-failures:
			sawRecovery = oe.Actor == "fresh" && oe.Op == "GetSnapshot" && errors.Is(oe, synod.ErrUnavailable)
		case <-deadline:
			t.Fatal("no supervisor event for the failed recovery of fresh")
		}
	}

	tr.Heal()
	st := queryView(t, sys, pid).state
	if !slices.Equal(st, []string{"before"}) && !slices.Equal(st, []string{"before", "during"}) {
		t.Fatalf("state after healing %v, want [before] or, if the failed write was indeterminate and landed, [before during]", st)
	}
	if got := queryView(t, sys, fresh).state; len(got) != 0 {
		t.Fatalf("fresh state %v, want empty", got)
	}
}
