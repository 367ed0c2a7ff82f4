package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/internal/acceptortest"
	"github.com/protosynod/protosynod/synod"
)

// Two activations of one key on two nodes, each with its own NATS connection
// and proposer, over three acceptors on Pebble: every acknowledged increment
// counts exactly once, and the balance survives a restart of every acceptor.
func TestTwoActivationsOverNATS(t *testing.T) {
	acc := acceptortest.Start(t, "actors", 3)
	node := func(name string) actors.Target {
		reg, err := synod.NewClient(synod.RandomProposerID(name), acc.Config(), acc.Transport(t))
		if err != nil {
			t.Fatal(err)
		}
		sys := quiet(t)
		return actors.Local(sys, spawn(t, sys, reg, "acct-"+name, actors.WithKey("acct")))
	}
	targets := []actors.Target{node("n1"), node("n2")}

	const senders, each = 6, 10
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acks    int64
		retries int
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("s%d-%d", s, i)
				err := addOnce(ctx, targets, s+i, id, 20, func(error) {
					mu.Lock()
					retries++
					mu.Unlock()
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
	got := balance(t, targets[0])
	t.Logf("%d acknowledged increments, %d retries with the same request ID", acks, retries)
	if got != acks || acks != senders*each {
		t.Fatalf("balance = %d, acknowledged increments = %d, sent %d", got, acks, senders*each)
	}

	acc.Stop()
	acc.Start()
	if after := balance(t, node("n3")); after != got {
		t.Fatalf("balance after every acceptor restarted = %d, want %d", after, got)
	}
}
