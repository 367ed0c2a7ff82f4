package harness

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// OpKind is the kind of a register operation.
type OpKind int

const (
	// OpRead reads a register: Output.Value is the value read.
	OpRead OpKind = iota + 1
	// OpWrite sets a register to Input.Value unconditionally.
	OpWrite
	// OpCAS sets a register to Input.Value if it holds Input.Old; Output.OK
	// reports whether it did.
	OpCAS
)

// String returns "read", "write" or "cas".
func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpCAS:
		return "cas"
	default:
		return fmt.Sprintf("OpKind(%d)", int(k))
	}
}

// Input is an operation on the register named Key. Values are strings; the
// empty string is the value of a register never written, so workloads should
// not write it. For the lost-write check, every write and CAS on a key should
// write a value no other operation on that key writes.
type Input struct {
	Kind  OpKind
	Key   string
	Old   string // OpCAS: the expected value
	Value string // OpWrite, OpCAS: the new value
}

// Read returns the Input of a read of key.
func Read(key string) Input { return Input{Kind: OpRead, Key: key} }

// Write returns the Input of an unconditional write of value to key.
func Write(key, value string) Input { return Input{Kind: OpWrite, Key: key, Value: value} }

// CAS returns the Input of a compare-and-set of key from old to value.
func CAS(key, old, value string) Input {
	return Input{Kind: OpCAS, Key: key, Old: old, Value: value}
}

// String renders the input as in "cas(k, a→b)".
func (in Input) String() string {
	switch in.Kind {
	case OpRead:
		return fmt.Sprintf("read(%s)", in.Key)
	case OpWrite:
		return fmt.Sprintf("write(%s, %s)", in.Key, quoteValue(in.Value))
	case OpCAS:
		return fmt.Sprintf("cas(%s, %s→%s)", in.Key, quoteValue(in.Old), quoteValue(in.Value))
	default:
		return fmt.Sprintf("%v(%s)", in.Kind, in.Key)
	}
}

// Output is what a completed operation returned: Value for a read, OK for a
// CAS, nothing for a write.
type Output struct {
	Value string // OpRead: the value read ("" if never written)
	OK    bool   // OpCAS: whether the swap happened
}

// Status is how an operation ended.
type Status int

const (
	// StatusPending means the operation has not completed (yet). The checker
	// treats it as indeterminate.
	StatusPending Status = iota
	// StatusOK means the operation completed and its Output is known.
	StatusOK
	// StatusFailed means the operation certainly had no effect (for example
	// ErrConflict or ErrUnavailable before anything was sent for acceptance).
	StatusFailed
	// StatusIndeterminate means the operation may or may not have taken
	// effect, now or later (a timeout after the value was sent, a crashed
	// client).
	StatusIndeterminate
)

// String returns "pending", "ok", "failed" or "indeterminate".
func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusOK:
		return "ok"
	case StatusFailed:
		return "failed"
	case StatusIndeterminate:
		return "indeterminate"
	default:
		return fmt.Sprintf("Status(%d)", int(s))
	}
}

// infinity is the return time of an operation whose outcome is unknown: it
// may take effect at any time after its call, or never.
const infinity = time.Duration(math.MaxInt64)

// Op is one recorded operation.
type Op struct {
	// Client is the caller's client ID, as passed to [Recorder.Call].
	Client int
	// Process numbers the client's incarnations, porcupine-style: after an
	// indeterminate operation a client continues as a new process, since its
	// old operation may still be in flight. Unique across the recorder,
	// zero-based and dense.
	Process int
	Input   Input
	Output  Output
	Status  Status
	// Err is the error passed to Fail or Indeterminate, if any.
	Err error
	// Call and Return are offsets from the recorder's start. Return is
	// math.MaxInt64 while the operation is pending or indeterminate.
	Call, Return time.Duration
}

// Annotation marks an event or a span in the history, such as a fault.
type Annotation struct {
	Tag         string // groups annotations in the visualization, e.g. "nemesis"
	Description string
	Start, End  time.Duration
}

// Recorder records a history of register operations from many goroutines.
// Times come from the monotonic clock, relative to NewRecorder. The zero
// value is not usable; call [NewRecorder].
type Recorder struct {
	start time.Time

	mu          sync.Mutex
	ops         []*Op
	processes   map[int]int // client ID -> its current process, if it has one
	next        int         // next process number
	annotations []Annotation
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now(), processes: make(map[int]int)}
}

// Pending is an operation that has been called and not yet completed.
// Complete it exactly once with Return, Fail or Indeterminate; a second
// completion panics. An operation never completed counts as indeterminate.
type Pending struct {
	r  *Recorder
	op *Op
}

// Call records that client invokes in, now. Call it right before sending the
// request and complete the returned Pending right after the reply, so the
// recorded interval contains the real one.
func (r *Recorder) Call(client int, in Input) *Pending {
	now := time.Since(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	proc, ok := r.processes[client]
	if !ok {
		proc = r.next
		r.next++
		r.processes[client] = proc
	}
	op := &Op{Client: client, Process: proc, Input: in, Call: now, Return: infinity}
	r.ops = append(r.ops, op)
	return &Pending{r: r, op: op}
}

// Return records that the operation completed with out.
func (p *Pending) Return(out Output) {
	p.complete(StatusOK, out, nil)
}

// Fail records that the operation certainly had no effect. If that is not
// certain, use Indeterminate: a failed operation is left out of the checked
// history, so a "failed" write that did take effect shows up as a violation.
func (p *Pending) Fail(err error) {
	p.complete(StatusFailed, Output{}, err)
}

// Indeterminate records that the operation's outcome is unknown: it may have
// taken effect, or may still, at any time after its call. It is checked
// porcupine-style with a return time of +∞. The client continues as a new
// process (see [Op.Process]).
func (p *Pending) Indeterminate(err error) {
	p.complete(StatusIndeterminate, Output{}, err)
}

func (p *Pending) complete(status Status, out Output, err error) {
	now := time.Since(p.r.start)
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if p.op.Status != StatusPending {
		panic(fmt.Sprintf("harness: %v by client %d completed twice (%v, then %v)",
			p.op.Input, p.op.Client, p.op.Status, status))
	}
	p.op.Status, p.op.Output, p.op.Err = status, out, err
	if status != StatusIndeterminate {
		p.op.Return = now
		return
	}
	// The op may still be in flight: the client's next op must not be
	// ordered after it, so the client's next Call starts a new process.
	if proc, ok := p.r.processes[p.op.Client]; ok && proc == p.op.Process {
		delete(p.r.processes, p.op.Client)
	}
}

// Annotate marks an event, such as a fault, on the history's timeline; it is
// shown in the visualization. The span ends when end is called; if end is
// never called, the annotation marks a point in time.
func (r *Recorder) Annotate(tag, description string) (end func()) {
	now := time.Since(r.start)
	r.mu.Lock()
	i := len(r.annotations)
	r.annotations = append(r.annotations, Annotation{Tag: tag, Description: description, Start: now, End: now})
	r.mu.Unlock()
	return func() {
		now := time.Since(r.start)
		r.mu.Lock()
		r.annotations[i].End = now
		r.mu.Unlock()
	}
}

// Elapsed returns the time since the recorder started, on the clock the
// history uses.
func (r *Recorder) Elapsed() time.Duration { return time.Since(r.start) }

// Ops returns a copy of the history so far, in call order.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := make([]Op, len(r.ops))
	for i, op := range r.ops {
		ops[i] = *op
	}
	return ops
}

// Annotations returns a copy of the annotations so far.
func (r *Recorder) Annotations() []Annotation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Annotation(nil), r.annotations...)
}

// quoteValue renders a register value, showing the initial value as ∅.
func quoteValue(v string) string {
	if v == "" {
		return "∅"
	}
	return fmt.Sprintf("%q", v)
}
