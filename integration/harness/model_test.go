package harness

import (
	"math/rand"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// randomHistory returns a small random history on one key, values from a
// small alphabet, random intervals and outcomes: many are not linearizable.
func randomHistory(rng *rand.Rand) []Op {
	values := []string{"", "a", "b", "c"}
	pick := func() string { return values[rng.Intn(len(values))] }
	n := 2 + rng.Intn(8)
	ops := make([]Op, n)
	for i := range ops {
		call := time.Duration(rng.Intn(100))
		op := Op{Process: i, Call: call, Return: call + time.Duration(rng.Intn(40))}
		switch rng.Intn(3) {
		case 0:
			op.Input = Read("k")
			op.Output.Value = pick()
		case 1:
			op.Input = Write("k", pick())
		default:
			op.Input = CAS("k", pick(), pick())
			op.Output.OK = rng.Intn(2) == 0
		}
		switch r := rng.Intn(10); {
		case r < 6:
			op.Status = StatusOK
		case r < 7:
			op.Status = StatusFailed
		default:
			op.Status = StatusIndeterminate
			op.Output = Output{}
			op.Return = infinity
		}
		ops[i] = op
	}
	return ops
}

// TestPruningKeepsTheVerdict is an oracle test: leaving out unobservable
// indeterminate operations never changes porcupine's verdict.
func TestPruningKeepsTheVerdict(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	model := RegisterModel()
	var pruned, illegal int
	for i := range 10000 {
		ops := randomHistory(rng)
		full, _ := toPorcupine(ops, false)
		small, p := toPorcupine(ops, true)
		want := porcupine.CheckOperations(model, full)
		if got := porcupine.CheckOperations(model, small); got != want {
			t.Fatalf("history %d: verdict %v with pruning, %v without:\n%v", i, got, want, ops)
		}
		pruned += p
		if !want {
			illegal++
		}
	}
	t.Logf("%d operations pruned, %d of 10000 histories illegal", pruned, illegal)
	if pruned == 0 || illegal == 0 {
		t.Error("the generator exercised neither pruning nor violations")
	}
}

func TestPruneUnobservedIndeterminateWrites(t *testing.T) {
	r := historyOf(
		step{0, Write("x", "a"), Output{}, 0, 10, StatusOK},
		step{1, Write("x", "lost-in-flight"), Output{}, 20, -1, StatusIndeterminate},
		step{2, Write("x", "seen"), Output{}, 20, -1, StatusIndeterminate},
		step{0, Read("x"), Output{Value: "seen"}, 30, 40, StatusOK},
	)
	res := r.Analyze(10 * time.Second)
	if res.Pruned != 1 || res.Linearizable != porcupine.Ok {
		t.Errorf("Pruned = %d, Linearizable = %v; want 1, Ok", res.Pruned, res.Linearizable)
	}
}
