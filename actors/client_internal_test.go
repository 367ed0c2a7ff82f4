package actors

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// distinctSlots returns n local targets in distinct slots of p.
func distinctSlots(p *senderPool, n int) ([]Target, []int) {
	var targets []Target
	var slots []int
	taken := map[int]bool{}
	for i := 0; len(targets) < n; i++ {
		to := Local(nil, actor.NewPID("nonhost", fmt.Sprintf("t%d", i)))
		if s := p.slot(to); !taken[s] {
			taken[s] = true
			targets, slots = append(targets, to), append(slots, s)
		}
	}
	return targets, slots
}

func TestSenderPoolPrefersTheTargetsSender(t *testing.T) {
	p := senderPool{seed: maphash.MakeSeed()}
	_, slots := distinctSlots(&p, 3)
	a, b, c := slots[0], slots[1], slots[2]
	s1, s2 := p.take(a), p.take(b)
	if s1 == s2 {
		t.Fatal("two Requests in flight share a sender")
	}
	p.put(a, s1)
	p.put(b, s2)
	// A last-in-first-out pool would hand out s2 first, whatever the target.
	if got := p.take(a); got != s1 {
		t.Fatal("a Request to a got another sender than the one last used for a")
	}
	if got := p.take(b); got != s2 {
		t.Fatal("a Request to b got another sender than the one last used for b")
	}
	// A sender whose slot is taken waits among the free ones, which a target
	// with an empty slot takes before a new one is made.
	p.put(a, s1)
	p.put(a, s2)
	if got := p.take(c); got != s2 {
		t.Fatal("a Request to c made a new sender while one was free")
	}
	if got := p.take(c); got == s1 || got == s2 {
		t.Fatal("a Request to c took a sender that waits in a's slot")
	}
	if got := p.take(a); got != s1 {
		t.Fatal("a's sender did not wait in its slot")
	}
}

// TestConcurrentRequestsKeepTheirSenders: two goroutines each send to their
// own actor, in lockstep, so that both Requests are in flight at once and
// return their senders in either order. Each actor's register must record
// one sender: the one its slot keeps. (A pool that hands out whichever
// sender came back last gives each actor both, nearly surely, in 20 steps.)
func TestConcurrentRequestsKeepTheirSenders(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c, err := synod.NewClient(synod.ProposerID("n", 1), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	props, err := Props(c, addHandler)
	if err != nil {
		t.Fatal(err)
	}
	// Two actors whose targets fall in different slots of the process's pool.
	var pids []*actor.PID
	var targets []Target
	seen := map[int]bool{}
	for i := 0; len(pids) < 2; i++ {
		pid := actor.NewPID(sys.Address(), fmt.Sprintf("keep%d", i))
		to := Local(sys, pid)
		if s := senders.slot(to); !seen[s] {
			seen[s] = true
			if pid, err = sys.Root.SpawnNamed(props, pid.Id); err != nil {
				t.Fatal(err)
			}
			pids, targets = append(pids, pid), append(targets, Local(sys, pid))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for step := range 20 {
		var wg sync.WaitGroup
		errs := make([]error, len(targets))
		for i, to := range targets {
			wg.Go(func() { _, errs[i] = Request(ctx, to, wrapperspb.Int64(1)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("step %d, actor %d: %v", step, i, err)
			}
		}
	}
	for _, pid := range pids {
		b, err := c.Read(ctx, DefaultKeyPrefix+pid.Id)
		if err != nil {
			t.Fatal(err)
		}
		rv, err := DecodeRegisterValue(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(rv.Senders) != 1 {
			t.Errorf("actor %s's register records %d senders after 20 Requests from one slot, want 1: %+v", pid.Id, len(rv.Senders), rv.Senders)
		}
	}
}
