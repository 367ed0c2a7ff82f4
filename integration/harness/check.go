package harness

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var (
	// ErrNotLinearizable means porcupine found no linearization of the
	// history.
	ErrNotLinearizable = errors.New("harness: history is not linearizable")
	// ErrCheckTimeout means porcupine neither found a linearization nor
	// proved there is none before the timeout.
	ErrCheckTimeout = errors.New("harness: linearizability check timed out")
	// ErrLostWrites means a final read missed an acknowledged write (see
	// [Result.Lost]).
	ErrLostWrites = errors.New("harness: acknowledged writes lost")
)

// LostWrite is an acknowledged write that a key's final read does not
// reflect.
type LostWrite struct {
	Op    Op     // the acknowledged write or successful CAS
	Final Op     // the key's final read
	Why   string // which rule it broke, in words
}

// Result is the outcome of [Recorder.Analyze].
type Result struct {
	// Linearizable is porcupine's verdict: Ok, Illegal or Unknown (timeout).
	Linearizable porcupine.CheckResult
	// IllegalKeys lists the keys whose sub-history has no linearization
	// (only when Linearizable is Illegal).
	IllegalKeys []string
	// OK, Failed and Indeterminate count operations by how they ended;
	// operations never completed count as indeterminate.
	OK, Failed, Indeterminate int
	// LongestUnavailable is the longest stretch of the history (from the
	// first call to the last event) in which no operation completed OK, and
	// UnavailableFrom and HistoryLength where it began and how long the
	// history is, both from its first call: a stretch that ends the history
	// is the last operations' tail, when the workload has stopped.
	LongestUnavailable             time.Duration
	UnavailableFrom, HistoryLength time.Duration
	// Lost lists acknowledged writes that final reads do not reflect.
	Lost []LostWrite
	// Unverified lists keys that had acknowledged writes but no successful
	// read, so the lost-write check could not look at them.
	Unverified []string
	// Pruned counts indeterminate writes and CASes left out of porcupine's
	// history because no operation could have observed them (which keeps
	// the verdict and shrinks the search; see history.txt for all
	// operations).
	Pruned int
	// CheckDuration is how long porcupine ran.
	CheckDuration time.Duration

	model       porcupine.Model
	info        porcupine.LinearizationInfo
	ops         []Op
	annotations []Annotation
	timeout     time.Duration
}

// Analyze checks the history recorded so far. It runs porcupine (timeout 0
// means no limit) on the operations partitioned by key, counts operations,
// measures unavailability and runs the lost-write check described at
// [Result.Lost]. Operations still pending are treated as indeterminate.
//
// What the lost-write check asserts, per key: the key's final read F is its
// successful read with the latest call time (so issue one read per key after
// the workload has stopped and faults have healed). An acknowledged write is a
// write or a CAS that returned OK (ok = true) before F was called. Such a
// write a is lost if F's value could not have been written at or after a:
// that is, if no write or CAS (OK or indeterminate; failed ones excluded) that
// stores F's value, called before F returned, returned at or after a's call.
// Writers that returned before a was called precede a in every
// linearization, so their value cannot be the last one before F.
//
// The check assumes each key's written values are unique (otherwise a lost
// write can hide behind a duplicate value) and is implied by
// linearizability: a lost write always makes the history non-linearizable. It
// is reported separately because it is cheap, never times out, and names the
// writes that were lost.
func (r *Recorder) Analyze(timeout time.Duration) *Result {
	ops := r.Ops()
	res := &Result{
		model:       RegisterModel(),
		ops:         ops,
		annotations: r.Annotations(),
		timeout:     timeout,
	}
	for _, op := range ops {
		switch op.Status {
		case StatusOK:
			res.OK++
		case StatusFailed:
			res.Failed++
		default:
			res.Indeterminate++
		}
	}
	res.LongestUnavailable, res.UnavailableFrom, res.HistoryLength = longestUnavailable(ops)
	res.Lost, res.Unverified = lostWrites(ops)

	history, pruned := porcupineHistory(ops)
	res.Pruned = pruned
	start := time.Now()
	res.Linearizable, res.info = porcupine.CheckOperationsVerbose(res.model, history, timeout)
	res.CheckDuration = time.Since(start)
	if res.Linearizable == porcupine.Illegal {
		parts, keys := partitionByKey(history)
		partials := res.info.PartialLinearizations()
		for i, part := range parts {
			complete := false
			for _, lin := range partials[i] {
				if len(lin) == len(part) {
					complete = true
					break
				}
			}
			if !complete {
				res.IllegalKeys = append(res.IllegalKeys, keys[i])
			}
		}
	}
	return res
}

// Err returns nil if the history passed every check, and otherwise an error
// wrapping [ErrNotLinearizable], [ErrCheckTimeout] and/or [ErrLostWrites].
// Unverified keys are not an error.
func (res *Result) Err() error {
	var errs []error
	switch res.Linearizable {
	case porcupine.Ok:
	case porcupine.Illegal:
		errs = append(errs, fmt.Errorf("%w (keys %s)", ErrNotLinearizable, strings.Join(res.IllegalKeys, ", ")))
	default:
		errs = append(errs, fmt.Errorf("%w after %v", ErrCheckTimeout, res.timeout))
	}
	if len(res.Lost) > 0 {
		var b strings.Builder
		for i, l := range res.Lost {
			if i == 5 {
				fmt.Fprintf(&b, "\n  ... and %d more", len(res.Lost)-i)
				break
			}
			fmt.Fprintf(&b, "\n  %s", l)
		}
		errs = append(errs, fmt.Errorf("%w: %d%s", ErrLostWrites, len(res.Lost), b.String()))
	}
	return errors.Join(errs...)
}

// String summarizes the result on one line.
func (res *Result) String() string {
	s := fmt.Sprintf("%d ok, %d failed, %d indeterminate; longest without success %v (from %v of %v); linearizable: %s",
		res.OK, res.Failed, res.Indeterminate, res.LongestUnavailable.Round(time.Millisecond),
		res.UnavailableFrom.Round(time.Millisecond), res.HistoryLength.Round(time.Millisecond), res.Linearizable)
	if len(res.IllegalKeys) > 0 {
		s += fmt.Sprintf(" (keys %s)", strings.Join(res.IllegalKeys, ", "))
	}
	s += fmt.Sprintf("; lost acknowledged writes: %d", len(res.Lost))
	if len(res.Unverified) > 0 {
		s += fmt.Sprintf("; keys without a final read: %d", len(res.Unverified))
	}
	if res.Pruned > 0 {
		s += fmt.Sprintf("; unobservable indeterminate operations pruned: %d", res.Pruned)
	}
	return s + fmt.Sprintf("; check took %v", res.CheckDuration.Round(time.Millisecond))
}

// Row returns the result as a summary row for scenario.
func (res *Result) Row(scenario string) SummaryRow {
	return SummaryRow{
		Scenario:           scenario,
		OK:                 res.OK,
		Failed:             res.Failed,
		Indeterminate:      res.Indeterminate,
		LongestUnavailable: res.LongestUnavailable,
		Linearizable:       string(res.Linearizable),
		Violations:         len(res.IllegalKeys),
		LostWrites:         len(res.Lost),
	}
}

// String describes the lost write.
func (l LostWrite) String() string {
	return fmt.Sprintf("%v by client %d [%v, %v] acknowledged, but final read [%v, %v] returned %s: %s",
		l.Op.Input, l.Op.Client, l.Op.Call, l.Op.Return, l.Final.Call, l.Final.Return,
		quoteValue(l.Final.Output.Value), l.Why)
}

// writes reports whether op may have stored in.Value: a write, or a CAS that
// succeeded or whose outcome is unknown. Failed operations did not.
func writes(op Op) bool {
	switch {
	case op.Status == StatusFailed:
		return false
	case op.Input.Kind == OpWrite:
		return true
	case op.Input.Kind == OpCAS:
		return op.Status != StatusOK || op.Output.OK
	default:
		return false
	}
}

// acknowledged reports whether op is a write the system confirmed.
func acknowledged(op Op) bool {
	return op.Status == StatusOK && writes(op)
}

// lostWrites implements the check documented at Recorder.Analyze.
func lostWrites(ops []Op) (lost []LostWrite, unverified []string) {
	byKey := make(map[string][]Op)
	for _, op := range ops {
		byKey[op.Input.Key] = append(byKey[op.Input.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		kops := byKey[key]
		var final *Op
		for i := range kops {
			op := &kops[i]
			if op.Input.Kind != OpRead || op.Status != StatusOK {
				continue
			}
			if final == nil || op.Call > final.Call || (op.Call == final.Call && op.Return > final.Return) {
				final = op
			}
		}
		if final == nil {
			for _, op := range kops {
				if acknowledged(op) {
					unverified = append(unverified, key)
					break
				}
			}
			continue
		}
		// The latest return among operations that may have written the
		// final value; -1 if none (the final value is the initial one, or
		// was never written).
		latest := time.Duration(-1)
		for _, op := range kops {
			if writes(op) && op.Input.Value == final.Output.Value && op.Call <= final.Return && op.Return > latest {
				latest = op.Return
			}
		}
		for _, op := range kops {
			if !acknowledged(op) || op.Return >= final.Call || op.Call <= latest {
				continue
			}
			why := "no operation that wrote the final value ended after this write began"
			if latest < 0 {
				why = "no operation wrote the final value"
			}
			lost = append(lost, LostWrite{Op: op, Final: *final, Why: why})
		}
	}
	return lost, unverified
}

// longestUnavailable returns the longest interval, from the first call to the
// last event, without an operation completing OK, where it began and the
// history's length, both from the first call.
func longestUnavailable(ops []Op) (longest, from, length time.Duration) {
	if len(ops) == 0 {
		return 0, 0, 0
	}
	start, end := ops[0].Call, ops[0].Call
	var oks []time.Duration
	for _, op := range ops {
		start = min(start, op.Call)
		end = max(end, op.Call)
		if op.Return != infinity {
			end = max(end, op.Return)
		}
		if op.Status == StatusOK {
			oks = append(oks, op.Return)
		}
	}
	sort.Slice(oks, func(i, j int) bool { return oks[i] < oks[j] })
	prev := start
	for _, t := range append(oks, end) {
		if t-prev > longest {
			longest, from = t-prev, prev-start
		}
		prev = max(prev, t)
	}
	return longest, from, end - start
}

// CheckOption configures [Recorder.Check].
type CheckOption func(*checkOptions)

type checkOptions struct {
	logs     []LogSource
	summary  *Summary
	scenario string
}

// LogSource is anything with log files worth keeping when a check fails, such
// as a [*Proc] or a [*NATSCluster].
type LogSource interface {
	LogFiles() []string
}

// WithLogs copies the sources' log files into the artifacts directory when
// the check fails.
func WithLogs(sources ...LogSource) CheckOption {
	return func(o *checkOptions) { o.logs = append(o.logs, sources...) }
}

// WithSummary adds the result to s as a row for scenario.
func WithSummary(s *Summary, scenario string) CheckOption {
	return func(o *checkOptions) { o.summary, o.scenario = s, scenario }
}

// Check analyzes the history (see [Recorder.Analyze]) with the given
// porcupine timeout and logs the result. If the history fails a check (a
// violation, lost acknowledged writes, or a timed-out check) it writes the
// artifacts (see [Result.WriteArtifacts]) to a new directory under
// $PROTOSYNOD_ARTIFACTS, or under the system's temporary directory if that is
// unset, and fails the test with t.Errorf naming the directory. The test goes
// on; the result is returned either way.
func (r *Recorder) Check(t testing.TB, timeout time.Duration, opts ...CheckOption) *Result {
	t.Helper()
	var o checkOptions
	for _, opt := range opts {
		opt(&o)
	}
	res := r.Analyze(timeout)
	t.Logf("harness: history of %d operations: %v", len(res.ops), res)
	if o.summary != nil {
		o.summary.Add(res.Row(o.scenario))
	}
	err := res.Err()
	if err == nil {
		return res
	}
	dir, derr := ArtifactsDir(t.Name())
	if derr == nil {
		derr = res.WriteArtifacts(dir, o.logs...)
	}
	if derr != nil {
		t.Errorf("%v\n(harness: could not keep artifacts: %v)", err, derr)
		return res
	}
	t.Errorf("%v\nartifacts (visualization, history, logs): %s", err, dir)
	return res
}
