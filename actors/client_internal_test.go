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

// distinctSlots returns n PIDs at address whose targets fall in distinct
// slots of p, and their slots.
func distinctSlots(p *senderPool, address string, n int) ([]*actor.PID, []int) {
	var pids []*actor.PID
	var slots []int
	taken := map[int]bool{}
	for i := 0; len(pids) < n; i++ {
		pid := actor.NewPID(address, fmt.Sprintf("t%d", i))
		if s := p.slot(Local(nil, pid)); !taken[s] {
			taken[s] = true
			pids, slots = append(pids, pid), append(slots, s)
		}
	}
	return pids, slots
}

func TestSenderPoolPrefersTheTargetsSender(t *testing.T) {
	p := senderPool{seed: maphash.MakeSeed()}
	_, slots := distinctSlots(&p, "nonhost", 3)
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
	pids, _ := distinctSlots(&senders, sys.Address(), 2)
	var targets []Target
	for i, pid := range pids {
		if pids[i], err = sys.Root.SpawnNamed(props, pid.Id); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Local(sys, pids[i]))
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
