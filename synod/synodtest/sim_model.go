package synodtest

import (
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/anishathalye/porcupine"
)

// OpKind is the kind of a register operation in a checked history.
type OpKind uint8

const (
	// OpRead reads the register.
	OpRead OpKind = iota
	// OpWrite sets the register to Arg unconditionally.
	OpWrite
	// OpCAS sets the register to Arg if it holds Old; otherwise it fails and
	// reports the value it found.
	OpCAS
	// OpAppend appends Arg to the register. Arg is unique, so an append applied
	// twice is visible in every later value.
	OpAppend
	// OpDelete deletes the register: it reads as empty afterwards and can be
	// written again.
	OpDelete
)

// String implements fmt.Stringer.
func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpCAS:
		return "cas"
	case OpAppend:
		return "append"
	case OpDelete:
		return "delete"
	}
	return "OpKind(?)"
}

// RegisterInput is the input of one operation on a keyed register, for
// RegisterModel.
type RegisterInput struct {
	Kind OpKind
	Key  string
	Arg  string // the new value (OpWrite, OpCAS) or the suffix (OpAppend)
	Old  string // the expected value (OpCAS)
}

// RegisterOutput is the outcome of one operation, for RegisterModel.
type RegisterOutput struct {
	// Value is the register's value the operation returned: the value read,
	// written or appended to, or, for a CAS that failed, the value it found.
	Value string
	// OK is false only for a CAS that definitely failed.
	OK bool
	// Unknown marks an operation whose outcome is indeterminate: it may or may
	// not have taken effect, and its Return must be "never" (see
	// IndeterminateReturn).
	Unknown bool
	// Applied marks an operation known to have taken effect exactly once
	// whose resulting value is unknown: an exactly-once retry found it
	// applied by an earlier attempt (package dedup). A compare-and-set
	// applied so found had fired.
	Applied bool
}

// IndeterminateReturn is the Return time to record for an operation whose
// outcome is indeterminate: it never returns, so porcupine may linearize it at
// any point after its call, including after everything else (never applied).
const IndeterminateReturn = math.MaxInt64

// RegisterModel is the porcupine model of independent registers partitioned by
// key. Each register holds a string, empty when never written. A history for it
// records operations with RegisterInput and RegisterOutput; operations that
// definitely did not take effect (ErrConflict, ErrUnavailable) are left out,
// which is sound because they neither changed nor observed the register, and
// lets the checker catch one that did take effect after all: values are unique,
// so a value that no recorded operation wrote cannot be explained.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			st := state.(string)
			in := input.(RegisterInput)
			out := output.(RegisterOutput)
			return registerStep(st, in, out)
		},
		DescribeOperation: func(input, output any) string {
			return describeOp(input.(RegisterInput), output.(RegisterOutput))
		},
		DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
	}
}

func registerStep(st string, in RegisterInput, out RegisterOutput) (bool, string) {
	if out.Applied {
		switch in.Kind {
		case OpWrite:
			return true, in.Arg
		case OpAppend:
			return true, st + in.Arg
		case OpCAS:
			return st == in.Old, in.Arg
		case OpDelete:
			return true, ""
		}
		return false, st
	}
	switch in.Kind {
	case OpRead:
		return out.Unknown || out.Value == st, st
	case OpWrite:
		return out.Unknown || out.Value == in.Arg, in.Arg
	case OpAppend:
		next := st + in.Arg
		return out.Unknown || out.Value == next, next
	case OpDelete:
		return out.Unknown || out.Value == "", ""
	case OpCAS:
		switch {
		case out.Unknown:
			if st == in.Old {
				return true, in.Arg
			}
			return true, st
		case out.OK:
			return st == in.Old && out.Value == in.Arg, in.Arg
		default:
			return st != in.Old && out.Value == st, st
		}
	}
	return false, st
}

func describeOp(in RegisterInput, out RegisterOutput) string {
	var res string
	switch {
	case out.Unknown:
		res = "?"
	case out.Applied:
		res = "applied"
	case in.Kind == OpCAS && !out.OK:
		res = fmt.Sprintf("false (found %q)", out.Value)
	default:
		res = fmt.Sprintf("%q", out.Value)
	}
	switch in.Kind {
	case OpRead:
		return fmt.Sprintf("read(%s) → %s", in.Key, res)
	case OpWrite:
		return fmt.Sprintf("write(%s, %q) → %s", in.Key, in.Arg, res)
	case OpAppend:
		return fmt.Sprintf("append(%s, %q) → %s", in.Key, in.Arg, res)
	case OpDelete:
		return fmt.Sprintf("delete(%s) → %s", in.Key, res)
	case OpCAS:
		return fmt.Sprintf("cas(%s, %q, %q) → %s", in.Key, in.Old, in.Arg, res)
	}
	return "?"
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	idx := map[string]int{}
	var parts [][]porcupine.Operation
	for _, op := range history {
		k := op.Input.(RegisterInput).Key
		i, ok := idx[k]
		if !ok {
			i = len(parts)
			idx[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

// PruneUnobserved returns history without the indeterminate writes,
// compare-and-sets and appends whose Arg is never seen: it is a substring of no
// operation's output Value and of no operation's Old. This leaves the verdict
// of RegisterModel unchanged and can make checking much cheaper: each
// indeterminate operation may be linearized anywhere after its call, which is
// what makes a check expensive, and most of them are never observed.
//
// Why the verdict stays: dropping operations that may take effect last cannot
// make a linearizable history illegal. Conversely, take a linearization of the
// whole history. Once a pruned operation takes effect, the register contains
// its Arg until a write that is kept replaces the value. A read, a determinate
// append or a failed CAS in between would return a value containing the Arg,
// and a CAS that succeeds or fires in between would name it in its Old; so in
// between there are only indeterminate operations, which RegisterModel allows
// in any state. Dropping the pruned operations leaves every step valid.
func PruneUnobserved(history []porcupine.Operation) []porcupine.Operation {
	var seen strings.Builder
	for _, op := range history {
		seen.WriteString(op.Output.(RegisterOutput).Value)
		seen.WriteByte(0)
		seen.WriteString(op.Input.(RegisterInput).Old)
		seen.WriteByte(0)
	}
	all := seen.String()
	out := make([]porcupine.Operation, 0, len(history))
	for _, op := range history {
		in := op.Input.(RegisterInput)
		if op.Output.(RegisterOutput).Unknown && in.Kind != OpRead && !strings.Contains(all, in.Arg) {
			continue
		}
		out = append(out, op)
	}
	return out
}

// WriteVisualization checks history (pruned by PruneUnobserved) against
// RegisterModel and writes
// porcupine's HTML visualization of it to a new temporary file, whose path it
// returns. pattern names the file as in os.CreateTemp.
func WriteVisualization(history []porcupine.Operation, pattern string) (string, error) {
	model := RegisterModel()
	_, info := porcupine.CheckOperationsVerbose(model, PruneUnobserved(history), 0)
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return "", err
	}
	if err := porcupine.Visualize(model, info, f); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}
