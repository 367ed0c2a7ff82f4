package viz

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

var autoSeeds = flag.Int("viz.seeds", 300, "random auto runs checked for linearizability")

// opInput and opOutput are an operation of a session for machineModel.
type opInput struct {
	Key      string
	Proposer int
	Cmd      string
}

type opOutput struct {
	Value   string
	Err     string // the change function's refusal
	Unknown bool   // indeterminate
}

// machineModel is the porcupine model of the session's registers: each key
// holds a value, and an operation runs the same change function the session
// gave the proposers (so Missile itself is the specification).
func machineModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var keys []string
			for _, o := range h {
				k := o.Input.(opInput).Key
				if _, ok := by[k]; !ok {
					keys = append(keys, k)
				}
				by[k] = append(by[k], o)
			}
			var out [][]porcupine.Operation
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(string), input.(opInput), output.(opOutput)
			_, f, _, _ := command(in.Proposer, in.Cmd)
			next, err := f([]byte(st))
			switch {
			case out.Unknown && err != nil:
				return true, st
			case out.Unknown:
				return true, string(next)
			case out.Err != "":
				return err != nil && err.Error() == out.Err && out.Value == st, st
			}
			return err == nil && string(next) == out.Value, string(next)
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(opInput), output.(opOutput)
			return fmt.Sprintf("p%d %s %s → %q %s unknown=%v", in.Proposer, in.Cmd, in.Key, out.Value, out.Err, out.Unknown)
		},
	}
}

// history returns the session's operations for machineModel: operations that
// definitely did not take effect are left out, indeterminate ones never return.
func history(s *Session) []porcupine.Operation {
	var h []porcupine.Operation
	for _, o := range s.Ops() {
		if !o.Done() || o.NotApplied() {
			continue
		}
		op := porcupine.Operation{ClientId: o.Proposer, Input: opInput{o.Key, o.Proposer, o.Cmd},
			Call: int64(2 * o.Call), Return: int64(2*o.Return + 1)}
		out := opOutput{Value: string(o.Value)}
		switch {
		case o.Indeterminate():
			out, op.Return = opOutput{Unknown: true}, math.MaxInt64
		case o.Err != nil:
			out.Err = o.Err.Error()
		}
		op.Output = out
		h = append(h, op)
	}
	return h
}

// randomRun drives a session of seed with auto choices and random commands,
// then runs it to quiescence.
func randomRun(t *testing.T, seed uint64) *Session {
	t.Helper()
	s := New(seed)
	r := rand.New(rand.NewPCG(seed, 7))
	cmds := []string{CmdSign, CmdRevoke, CmdInc}
	submitted := 0
	for step := 0; step < 400; step++ {
		if submitted < 10 && r.IntN(6) == 0 {
			submitted++
			if err := s.Do(Choice{Act: ActSubmit, Proposer: r.IntN(2), Cmd: cmds[r.IntN(3)]}); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			continue
		}
		ok, err := s.Auto()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !ok && submitted >= 10 {
			break
		}
	}
	for _, a := range s.acceptors {
		if !a.up {
			if err := s.Do(Choice{Act: ActRestart, Acceptor: a.id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Quiesce(5000); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	if !s.Quiet() {
		t.Fatalf("seed %d: not quiet after Quiesce", seed)
	}
	return s
}

// TestAutoLinearizable checks that the completed operations of random auto
// runs (drops, duplicated replies, crashes, retries, both generals and the
// counter) are linearizable.
func TestAutoLinearizable(t *testing.T) {
	n := *autoSeeds
	if testing.Short() {
		n = 30
	}
	var indeterminate, refused, fastPath int
	for seed := uint64(1); seed <= uint64(n); seed++ {
		s := randomRun(t, seed)
		h := history(s)
		for _, o := range s.Ops() {
			switch {
			case o.Indeterminate():
				indeterminate++
			case o.Err != nil:
				refused++
			}
			if o.FastPath {
				fastPath++
			}
		}
		if !porcupine.CheckOperations(machineModel(), h) {
			var b strings.Builder
			for _, o := range h {
				fmt.Fprintf(&b, "%v [%d,%d] %v\n", o.Input, o.Call, o.Return, o.Output)
			}
			t.Fatalf("seed %d: history not linearizable:\n%s\nchoices: %+v", seed, b.String(), s.Choices())
		}
	}
	t.Logf("%d runs: %d indeterminate, %d refused by the state machine, %d on the one-round-trip path", n, indeterminate, refused, fastPath)
}

// TestCheckerCatchesForgery checks that the model is not vacuous: a history
// whose one determinate result is altered fails the check.
func TestCheckerCatchesForgery(t *testing.T) {
	forged := 0
	for seed := uint64(1); seed <= 20 && forged < 5; seed++ {
		h := history(randomRun(t, seed))
		for i, op := range h {
			out := op.Output.(opOutput)
			if out.Unknown || out.Err != "" || op.Input.(opInput).Key != CounterKey {
				continue
			}
			out.Value = "forged" + out.Value // no run of counterInc gives this
			h[i].Output = out
			if porcupine.CheckOperations(machineModel(), h) {
				t.Fatalf("seed %d: a forged counter value passed the check", seed)
			}
			forged++
			break
		}
	}
	if forged == 0 {
		t.Fatal("no determinate counter operation to forge")
	}
}
