package synodtest_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/protosynod/protosynod/synod/synodtest"
)

// randomHistory generates a history of one register from a real sequential
// execution (so it is linearizable), with overlapping intervals, some
// indeterminate operations (applied or not), and, when corrupt, one output
// changed to another value of the history, which usually makes it illegal.
func randomHistory(r *rand.Rand, corrupt bool) []porcupine.Operation {
	var (
		h        []porcupine.Operation
		state    string
		observed = []string{""}
		now      int64
	)
	n := 2 + r.IntN(7)
	for i := range n {
		now += int64(r.IntN(3))
		in := synodtest.RegisterInput{Key: "k", Kind: synodtest.OpKind(r.IntN(4))}
		in.Arg = fmt.Sprintf("<v%d>", i)
		in.Old = observed[r.IntN(len(observed))]
		if in.Kind == synodtest.OpRead {
			in.Arg, in.Old = "", ""
		}
		if in.Kind == synodtest.OpAppend {
			in.Old = ""
		}
		op := porcupine.Operation{ClientId: i, Input: in, Call: now - int64(r.IntN(4)), Return: now + int64(r.IntN(4))}
		unknown := in.Kind != synodtest.OpRead && r.IntN(3) == 0
		applied := !unknown || r.IntN(2) == 0
		out := synodtest.RegisterOutput{OK: true}
		if applied {
			switch in.Kind {
			case synodtest.OpWrite:
				state = in.Arg
			case synodtest.OpAppend:
				state += in.Arg
			case synodtest.OpCAS:
				if state == in.Old {
					state = in.Arg
				} else {
					out.OK = false
				}
			}
		}
		out.Value = state
		if unknown {
			out = synodtest.RegisterOutput{Unknown: true}
			op.Return = synodtest.IndeterminateReturn
		} else {
			observed = append(observed, state)
		}
		op.Output = out
		h = append(h, op)
	}
	if corrupt {
		i := r.IntN(len(h))
		if out := h[i].Output.(synodtest.RegisterOutput); !out.Unknown {
			values := append([]string{}, observed...)
			for _, op := range h {
				values = append(values, op.Input.(synodtest.RegisterInput).Arg)
			}
			out.Value = values[r.IntN(len(values))]
			h[i].Output = out
		}
	}
	return h
}

// TestPruneUnobservedKeepsVerdict checks PruneUnobserved against the plain
// check on random histories, legal and illegal.
func TestPruneUnobservedKeepsVerdict(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	model := synodtest.RegisterModel()
	var legal, illegal, pruned int
	for i := range 4000 {
		h := randomHistory(r, i%2 == 1)
		p := synodtest.PruneUnobserved(h)
		pruned += len(h) - len(p)
		full, short := porcupine.CheckOperations(model, h), porcupine.CheckOperations(model, p)
		if full != short {
			for _, op := range h {
				t.Logf("  [%d,%d] %s", op.Call, op.Return, model.DescribeOperation(op.Input, op.Output))
			}
			t.Fatalf("history %d: linearizable=%v, after pruning %d ops: %v", i, full, len(h)-len(p), short)
		}
		if full {
			legal++
		} else {
			illegal++
		}
	}
	t.Logf("%d legal, %d illegal histories; %d operations pruned", legal, illegal, pruned)
	if legal < 1000 || illegal < 500 || pruned < 500 {
		t.Errorf("the generator is too one-sided: %d legal, %d illegal, %d pruned", legal, illegal, pruned)
	}
}

// TestRegisterModel pins down the sequential specification.
func TestRegisterModel(t *testing.T) {
	model := synodtest.RegisterModel()
	in := func(k synodtest.OpKind, arg, old string) synodtest.RegisterInput {
		return synodtest.RegisterInput{Kind: k, Key: "k", Arg: arg, Old: old}
	}
	ok := func(v string) synodtest.RegisterOutput { return synodtest.RegisterOutput{Value: v, OK: true} }
	unknown := synodtest.RegisterOutput{Unknown: true}
	tests := []struct {
		name      string
		state     string
		in        synodtest.RegisterInput
		out       synodtest.RegisterOutput
		wantOK    bool
		wantState string
	}{
		{"read sees the state", "a", in(synodtest.OpRead, "", ""), ok("a"), true, "a"},
		{"read of another value", "a", in(synodtest.OpRead, "", ""), ok("b"), false, "a"},
		{"write", "a", in(synodtest.OpWrite, "b", ""), ok("b"), true, "b"},
		{"append", "a", in(synodtest.OpAppend, "[b]", ""), ok("a[b]"), true, "a[b]"},
		{"append returning a stale value", "a", in(synodtest.OpAppend, "[b]", ""), ok("[b]"), false, "a[b]"},
		{"cas that succeeds", "a", in(synodtest.OpCAS, "b", "a"), ok("b"), true, "b"},
		{"cas that cannot succeed", "x", in(synodtest.OpCAS, "b", "a"), ok("b"), false, "b"},
		{"cas that fails and reports the value", "x", in(synodtest.OpCAS, "b", "a"), synodtest.RegisterOutput{Value: "x"}, true, "x"},
		{"cas that fails but could not", "a", in(synodtest.OpCAS, "b", "a"), synodtest.RegisterOutput{Value: "a"}, false, "a"},
		{"cas that fails reporting another value", "x", in(synodtest.OpCAS, "b", "a"), synodtest.RegisterOutput{Value: "y"}, false, "x"},
		{"unknown cas fires", "a", in(synodtest.OpCAS, "b", "a"), unknown, true, "b"},
		{"unknown cas does not fire", "x", in(synodtest.OpCAS, "b", "a"), unknown, true, "x"},
		{"unknown write", "x", in(synodtest.OpWrite, "b", ""), unknown, true, "b"},
	}
	for _, tt := range tests {
		gotOK, gotState := model.Step(tt.state, tt.in, tt.out)
		if gotOK != tt.wantOK || (gotOK && gotState != tt.wantState) {
			t.Errorf("%s: Step = %v, %q; want %v, %q", tt.name, gotOK, gotState, tt.wantOK, tt.wantState)
		}
	}
}
