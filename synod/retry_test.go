package synod_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// slowRequests delivers every prepare and accept a fixed delay after it is
// sent, as a network would: long enough for a competitor to change the key
// several times while a request is on its way.
type slowRequests struct {
	*synodtest.LocalTransport
	delay time.Duration
}

func (s slowRequests) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	go func() {
		time.Sleep(s.delay)
		_ = s.LocalTransport.Prepare(ctx, to, req, replies)
	}()
	return nil
}

func (s slowRequests) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	go func() {
		time.Sleep(s.delay)
		_ = s.LocalTransport.Accept(ctx, to, req, replies)
	}()
	return nil
}

// TestChangeOvertakesAKeyChangedInALoop runs changes of one key from a
// second client while a first one changes it in a loop on the one-round-trip
// path, taking a new ballot with each change, as a rescan or a failed-over
// actor meets its old activation. Every change of the second client must end
// well within its context: a retry that only went one ballot past the
// refusal it saw would be refused again for as long as the loop runs, until
// the context ends. A change may end early with ErrIndeterminate, and only
// with that: when its accept reached some acceptors and the loop's next
// round may or may not have adopted it (the Proposal's rule), which happens
// under load (in 2 of 2 runs of the -race suite beside natstransport's).
func TestChangeOvertakesAKeyChangedInALoop(t *testing.T) {
	local, cfg, _ := synodtest.NewLocalCluster(3)
	tr := slowRequests{LocalTransport: local, delay: time.Millisecond}
	newClient := func(name string, seed uint64) *synod.Client {
		c, err := synod.NewClient(synod.ProposerID(name, 1), cfg, tr, synod.WithRand(rand.New(rand.NewPCG(seed, 1))))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	loop, other := newClient("loop", 1), newClient("other", 2)
	incr := func(cur []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(cur))
		return []byte(strconv.Itoa(n + 1)), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var looped atomic.Int64
	var wg sync.WaitGroup
	started := make(chan struct{}) // closed once the loop is on the one-round-trip path
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := loop.Change(ctx, "k", incr); err == nil && looped.Add(1) == 10 {
				close(started)
			}
		}
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	<-started
	const changes = 10
	indeterminate := 0
	for i := range changes {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := other.Change(cctx, "k", incr)
		ended := cctx.Err()
		ccancel()
		switch {
		case err == nil:
		case errors.Is(err, synod.ErrIndeterminate) && ended == nil:
			indeterminate++
		default:
			t.Fatalf("change %d of %d beside the loop (which made %d): %v (context: %v)", i+1, changes, looped.Load(), err, ended)
		}
	}
	if indeterminate == changes {
		t.Fatalf("all %d changes beside the loop ended indeterminate", changes)
	}
	t.Logf("%d changes beside %d of the loop, %d of them indeterminate", changes, looped.Load(), indeterminate)
}
