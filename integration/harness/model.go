package harness

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// modelOutput is the Output porcupine sees: the operation's Output, or, for
// an operation whose outcome is unknown, Unknown set.
type modelOutput struct {
	Output
	Unknown bool
}

// opMeta is attached to each porcupine operation for the visualization.
type opMeta struct {
	client int
	status Status
	err    error
}

// String describes the operation's client, status and error.
func (m opMeta) String() string {
	s := fmt.Sprintf("client %d, %v", m.client, m.status)
	if m.err != nil {
		s += ": " + m.err.Error()
	}
	return s
}

// RegisterModel returns the porcupine model of a map from keys to string
// registers, partitioned by key (registers are independent, so the history is
// linearizable iff each key's sub-history is). A register starts as "".
//
//   - read returns the current value.
//   - write sets the value.
//   - cas(old→new) sets the value to new and returns OK if it equals old,
//     and otherwise returns !OK and changes nothing.
//
// Operations whose outcome is unknown carry modelOutput.Unknown and get a
// return time of +∞. An unknown write always applies; an unknown CAS applies
// if the value equals old. Not applying is covered too: porcupine may
// linearize the operation after every other one, where it affects nothing.
// Unknown reads constrain nothing and are left out of the history.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			parts, _ := partitionByKey(history)
			return parts
		},
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			cur := state.(string)
			in := input.(Input)
			out := output.(modelOutput)
			switch in.Kind {
			case OpRead:
				return out.Unknown || out.Value == cur, cur
			case OpWrite:
				return true, in.Value
			case OpCAS:
				swap := cur == in.Old
				switch {
				case out.Unknown && swap:
					return true, in.Value
				case out.Unknown:
					return true, cur
				case out.OK != swap:
					return false, cur
				case swap:
					return true, in.Value
				default:
					return true, cur
				}
			default:
				return false, cur
			}
		},
		Equal: func(a, b any) bool { return a.(string) == b.(string) },
		DescribeOperation: func(input, output any) string {
			in := input.(Input)
			out := output.(modelOutput)
			switch {
			case out.Unknown:
				return in.String() + " → ?"
			case in.Kind == OpRead:
				return in.String() + " → " + quoteValue(out.Value)
			case in.Kind == OpCAS && out.OK:
				return in.String() + " → ok"
			case in.Kind == OpCAS:
				return in.String() + " → refused"
			default:
				return in.String()
			}
		},
		DescribeState: func(state any) string { return quoteValue(state.(string)) },
		DescribeOperationMetadata: func(meta any) string {
			if m, ok := meta.(opMeta); ok {
				return m.String()
			}
			return ""
		},
	}
}

// partitionByKey groups operations by Input.Key, in key order, keeping each
// group's order.
func partitionByKey(history []porcupine.Operation) ([][]porcupine.Operation, []string) {
	byKey := make(map[string][]porcupine.Operation)
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		parts[i] = byKey[k]
	}
	return parts, keys
}

// porcupineHistory converts recorded operations into porcupine's form. Failed
// operations had no effect and are left out, as are reads whose result is
// unknown. Pending and indeterminate writes and CASes return at +∞, except
// those that nothing could have observed, which are left out too (see
// unobservable); pruned counts them.
func porcupineHistory(ops []Op) (history []porcupine.Operation, pruned int) {
	return toPorcupine(ops, true)
}

func toPorcupine(ops []Op, prune bool) (history []porcupine.Operation, pruned int) {
	obs := observations(ops)
	history = make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if op.Status == StatusFailed || (op.Input.Kind == OpRead && op.Status != StatusOK) {
			continue
		}
		if prune && op.Status != StatusOK && obs[op.Input.Key].unobservable(op) {
			pruned++
			continue
		}
		out := modelOutput{Output: op.Output, Unknown: op.Status != StatusOK}
		history = append(history, porcupine.Operation{
			ClientId: op.Process,
			Input:    op.Input,
			Call:     int64(op.Call),
			Output:   out,
			Return:   int64(op.Return),
			Metadata: opMeta{client: op.Client, status: op.Status, err: op.Err},
		})
	}
	return history, pruned
}

// observed is what the operations on one key could have seen.
type observed struct {
	read         map[string]bool // values returned by successful reads
	casOld       map[string]bool // expected values of CASes, whatever their outcome
	refused      bool            // some successful CAS was refused
	refusedUntil time.Duration   // the latest return of a refused CAS
}

func observations(ops []Op) map[string]*observed {
	obs := make(map[string]*observed)
	for _, op := range ops {
		o := obs[op.Input.Key]
		if o == nil {
			o = &observed{read: make(map[string]bool), casOld: make(map[string]bool)}
			obs[op.Input.Key] = o
		}
		switch {
		case op.Input.Kind == OpRead && op.Status == StatusOK:
			o.read[op.Output.Value] = true
		case op.Input.Kind == OpCAS:
			o.casOld[op.Input.Old] = true
			if op.Status == StatusOK && !op.Output.OK {
				if !o.refused || op.Return > o.refusedUntil {
					o.refusedUntil = op.Return
				}
				o.refused = true
			}
		}
	}
	return obs
}

// unobservable reports whether the indeterminate write or CAS w can be left
// out of the history without changing whether it is linearizable. That holds
// if no successful read returned w's value, no CAS expected w's value, and no
// refused CAS returned at or after w's call.
//
// Proof. Without w, a linearization of the rest extends to one with w by
// placing w last (its return is +∞ and the model accepts an unknown write or
// CAS in any state). Conversely, take a linearization with w and remove w.
// Only the operations between w and the next applied write or CAS now see the
// previous value p instead of w's value v. None is a read (it would return v)
// or a successful CAS (it would expect v). None is a refused CAS: it would
// linearize after w, hence after w's call, hence return after w's call.
// Unknown CASes there did not apply (they do not expect v); move them to the
// end, which their +∞ return allows, where they affect nothing. Removing
// several such operations is removing them one at a time, since removing
// operations keeps the conditions true.
func (o *observed) unobservable(w Op) bool {
	if w.Input.Kind == OpRead {
		return false
	}
	v := w.Input.Value
	return !o.read[v] && !o.casOld[v] && (!o.refused || o.refusedUntil < w.Call)
}
