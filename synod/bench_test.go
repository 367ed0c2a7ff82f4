package synod_test

import (
	"context"
	"testing"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// value100 is the 100-byte value of DESIGN's performance targets.
var value100 = make([]byte, 100)

func setValue100([]byte) ([]byte, error) { return value100, nil }

// benchmarkChange measures one sequential change through a Client over the
// in-memory LocalTransport (three acceptors on MemoryStorage): the protocol and
// driver cost with no network and no fsync.
func benchmarkChange(b *testing.B, opts ...synod.Option) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c, err := synod.NewClient(synod.ProposerID("bench", 1), cfg, tr, opts...)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Change(ctx, "k", setValue100); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Change(ctx, "k", setValue100); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChangeTwoPhase(b *testing.B) {
	benchmarkChange(b, synod.WithProposerOptions(synod.WithFastPath(false)))
}

func BenchmarkChangeFastPath(b *testing.B) { benchmarkChange(b) }

// benchmarkProposal measures the pure core: a Proposal stepped through a whole
// change against three acceptors' rules, with no transport, storage or
// goroutines.
func benchmarkProposal(b *testing.B, opts ...synod.ProposerOption) {
	ids := []string{"a0", "a1", "a2"}
	p, err := synod.NewProposer(synod.ProposerID("bench", 1), synod.Config{Acceptors: ids}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	var st [3]synod.AcceptorState
	prepares := 0
	change := func() {
		pr := p.Begin("k", setValue100)
		for pr.Status() != synod.StatusDone {
			switch pr.Status() {
			case synod.StatusPreparing:
				prepares++
				req := *pr.Request().Prepare
				for i, id := range ids {
					var rep synod.PrepareReply
					st[i], rep, _ = st[i].Prepare(id, req)
					pr.OnPrepareReply(rep)
				}
			case synod.StatusApply:
				pr.Apply()
			case synod.StatusAccepting:
				req := *pr.Request().Accept
				for i, id := range ids {
					var rep synod.AcceptReply
					st[i], rep, _ = st[i].Accept(id, req)
					pr.OnAcceptReply(rep)
				}
			default:
				b.Fatalf("status %v", pr.Status())
			}
		}
		p.Complete(pr)
		if _, err := pr.Result(); err != nil {
			b.Fatal(err)
		}
	}
	change()
	prepares = 0
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		change()
		n++
	}
	b.ReportMetric(float64(prepares)/float64(n), "prepares/op")
}

func BenchmarkProposalTwoPhase(b *testing.B) { benchmarkProposal(b, synod.WithFastPath(false)) }

func BenchmarkProposalFastPath(b *testing.B) { benchmarkProposal(b) }
