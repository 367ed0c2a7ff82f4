package synodtest

import (
	"errors"
	"fmt"

	"github.com/anishathalye/porcupine"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/dedup"
)

// simProposer drives one production synod.Proposer the way synod.Client does,
// with logical timers instead of contexts: a phase without a quorum within
// PhaseTimeout steps is retried after a backoff, and an operation still running
// at its deadline is abandoned.
type simProposer struct {
	idx       int
	p         *synod.Proposer
	opts      []synod.ProposerOption
	pr        *synod.Proposal // nil between operations and during a lean read
	lr        leanReader      // the lean read in flight, if any
	readID    uint64          // the lean read's ID, to ignore replies to earlier reads
	in        RegisterInput
	call      int64
	deadline  int64
	token     uint64 // invalidates timers set for an earlier phase
	seen      map[string]string
	opsLeft   int
	finalLeft int
	made      int  // values made, for unique values
	abandoned bool // the operation reached its deadline
	f         synod.ChangeFunc
	retried   bool // an exactly-once retry followed an indeterminate attempt
	operator  bool // the operator's proposer: it runs the rescans
}

// simDedupLimit is how many senders a register remembers in ExactlyOnce runs:
// more than there are proposers, so no entry in use is evicted.
const simDedupLimit = 16

func (s *sim) startOp(pp *simProposer) {
	if pp.pr != nil || pp.lr != nil {
		return
	}
	var f synod.ChangeFunc
	switch {
	case pp.operator:
		if len(s.op.rescan) == 0 {
			return
		}
		pp.in = RegisterInput{Kind: OpRead, Key: s.op.rescan[0]}
		pp.deadline = s.now + s.cfg.OpTimeout
	case pp.finalLeft > 0:
		pp.in = RegisterInput{Kind: OpRead, Key: s.keys[len(s.keys)-pp.finalLeft]}
		pp.deadline = s.now + 4*s.cfg.OpTimeout
	case pp.opsLeft > 0:
		key := s.keys[s.rng.IntN(len(s.keys))]
		pp.made++
		val := fmt.Sprintf("p%d.%d", pp.idx, pp.made)
		switch r := s.rng.IntN(10); {
		case s.cfg.Deletes && s.rng.IntN(6) == 0:
			pp.in = RegisterInput{Kind: OpDelete, Key: key}
		case r < 3:
			pp.in = RegisterInput{Kind: OpRead, Key: key}
		case r < 5:
			pp.in = RegisterInput{Kind: OpWrite, Key: key, Arg: val}
		case r < 8:
			pp.in = RegisterInput{Kind: OpCAS, Key: key, Arg: val, Old: pp.seen[key]}
		default:
			pp.in = RegisterInput{Kind: OpAppend, Key: key, Arg: "[" + val + "]"}
		}
		pp.deadline = s.now + s.cfg.OpTimeout
	default:
		return
	}
	f = changeFunc(pp.in)
	if s.cfg.ExactlyOnce && f != nil {
		// One sender per simulated client; its sequence numbers grow with
		// every operation it makes, and it has one change in flight.
		f = dedup.Wrap(dedup.ID{Sender: fmt.Sprintf("p%d", pp.idx), Seq: uint64(pp.made)}, f, simDedupLimit)
	}
	if pp.in.Kind != OpRead {
		s.res.Changes++
	}
	pp.f, pp.retried = f, false
	pp.call, pp.abandoned = s.now, false
	if pp.in.Kind == OpRead && s.cfg.LeanReads && !pp.operator { // a rescan is a full round
		s.startLeanRead(pp)
		return
	}
	pp.pr = pp.p.Begin(pp.in.Key, f)
	s.tracef("p%d begin %s at %v (%s)", pp.idx, describeInput(pp.in), pp.pr.Ballot(), pp.pr.Status())
	s.drive(pp)
}

func changeFunc(in RegisterInput) synod.ChangeFunc {
	switch in.Kind {
	case OpWrite:
		return func([]byte) ([]byte, error) { return []byte(in.Arg), nil }
	case OpCAS:
		return func(cur []byte) ([]byte, error) {
			if string(cur) != in.Old {
				return nil, errCASMismatch
			}
			return []byte(in.Arg), nil
		}
	case OpAppend:
		return func(cur []byte) ([]byte, error) {
			return append(append([]byte(nil), cur...), in.Arg...), nil
		}
	case OpDelete:
		return func([]byte) ([]byte, error) { return nil, nil }
	}
	return nil // a read
}

func describeInput(in RegisterInput) string {
	switch in.Kind {
	case OpRead:
		return fmt.Sprintf("read(%s)", in.Key)
	case OpDelete:
		return fmt.Sprintf("delete(%s)", in.Key)
	case OpWrite, OpAppend:
		return fmt.Sprintf("%s(%s, %q)", in.Kind, in.Key, in.Arg)
	}
	return fmt.Sprintf("cas(%s, %q, %q)", in.Key, in.Old, in.Arg)
}

// drive advances pp's proposal until it waits for the network or a timer.
func (s *sim) drive(pp *simProposer) {
	for {
		pr := pp.pr
		switch pr.Status() {
		case synod.StatusApply:
			pr.Apply()
		case synod.StatusPreparing, synod.StatusAccepting:
			pp.token++
			req := pr.Request()
			for _, id := range pr.Config().Acceptors {
				a := s.idx[id]
				if req.Prepare != nil {
					s.send(event{kind: evPrepare, p: pp.idx, a: a, prep: *req.Prepare})
				} else {
					s.send(event{kind: evAccept, p: pp.idx, a: a, acc: *req.Accept})
				}
			}
			s.schedule(min(s.cfg.PhaseTimeout, pp.deadline-s.now), event{kind: evTimeout, p: pp.idx, token: pp.token})
			return
		case synod.StatusRefused:
			if s.now >= pp.deadline {
				pr.Abandon()
				pp.abandoned = true
				continue
			}
			s.backoff(pp)
			return
		case synod.StatusDone:
			pp.p.Complete(pr)
			s.finishOp(pp)
			return
		}
	}
}

// backoff waits a jittered, exponentially growing number of steps (capped at
// the deadline) before the next attempt.
func (s *sim) backoff(pp *simProposer) {
	pp.token++
	hi := min(int64(1)<<min(pp.pr.Attempts(), 20), s.cfg.PhaseTimeout)
	d := min(1+s.rng.Int64N(hi), pp.deadline-s.now)
	s.tracef("p%d backoff %d after attempt %d (%s)", pp.idx, d, pp.pr.Attempts(), pp.pr.Status())
	s.schedule(d, event{kind: evRetry, p: pp.idx, token: pp.token})
}

func (s *sim) onTimeout(pp *simProposer, token uint64) {
	if pp.lr != nil && token == pp.token {
		s.tracef("p%d read#%d timeout", pp.idx, pp.readID)
		pp.lr.GiveUp()
		s.leanReadStep(pp)
		return
	}
	if pp.pr == nil || token != pp.token {
		return
	}
	s.tracef("p%d phase timeout (%s)", pp.idx, pp.pr.Status())
	if s.now >= pp.deadline {
		pp.pr.Abandon()
		pp.abandoned = true
		s.drive(pp)
		return
	}
	s.backoff(pp)
}

func (s *sim) onRetry(pp *simProposer, token uint64) {
	if pp.pr == nil || token != pp.token {
		return
	}
	if s.now >= pp.deadline {
		pp.pr.Abandon()
		pp.abandoned = true
	} else {
		pp.pr.Retry(pp.p)
		s.tracef("p%d retry at %v", pp.idx, pp.pr.Ballot())
	}
	s.drive(pp)
}

// finishOp records the finished operation in the history and schedules the
// proposer's next one.
func (s *sim) finishOp(pp *simProposer) {
	v, err := pp.pr.Result()
	if s.cfg.ExactlyOnce && pp.in.Kind != OpRead && errors.Is(err, synod.ErrIndeterminate) && s.now < pp.deadline {
		// As dedup.Client does: the same change, with the same ID, again,
		// until its outcome is known or the deadline passes.
		s.res.Retried++
		pp.retried = true
		pp.pr = pp.p.Begin(pp.in.Key, pp.f)
		s.tracef("p%d retries %s with its ID at %v (%s)", pp.idx, describeInput(pp.in), pp.pr.Ballot(), pp.pr.Status())
		s.drive(pp)
		return
	}
	s.endOp(pp, v, err, pp.pr.Ballot())
}

// endOp records the outcome of pp's operation, whose last attempt had ballot
// b (for a lean read: the accepted ballot it read), and moves on.
func (s *sim) endOp(pp *simProposer, v []byte, err error, b synod.Ballot) {
	in := pp.in
	op := porcupine.Operation{ClientId: pp.idx, Input: in, Call: pp.call, Return: s.now}
	s.tracef("p%d done %s at %v: %q, %v", pp.idx, describeInput(in), b, v, err)
	if s.cfg.ExactlyOnce && v != nil {
		var uerr error
		if v, _, uerr = dedup.Unwrap(v); uerr != nil {
			s.violation("p%d: %s: register value: %v", pp.idx, describeInput(in), uerr)
		}
	}
	record := true
	switch {
	case errors.Is(err, dedup.ErrApplied):
		// An earlier attempt applied it; its value then is not known.
		op.Output = RegisterOutput{Applied: true}
		s.res.Committed++
		s.res.Replayed++
		if s.acked[in.Key].Less(b) {
			s.acked[in.Key] = b
		}
	case err == nil || (in.Kind == OpCAS && errors.Is(err, errCASMismatch)):
		op.Output = RegisterOutput{Value: string(v), OK: err == nil}
		pp.seen[in.Key] = string(v)
		s.res.Committed++
		if in.Kind == OpDelete {
			s.res.Deleted++
		}
		if s.acked[in.Key].Less(b) {
			s.acked[in.Key] = b
		}
		s.checkDurable(in.Key)
	case errors.Is(err, synod.ErrIndeterminate) || (pp.retried && (errors.Is(err, synod.ErrConflict) || errors.Is(err, synod.ErrUnavailable))):
		// After an exactly-once retry, a retry that was not applied says
		// nothing of the attempt before it.
		if in.Kind == OpRead {
			s.violation("p%d: read of %s indeterminate", pp.idx, in.Key)
		}
		op.Output = RegisterOutput{Unknown: true}
		op.Return = IndeterminateReturn
		s.res.Indeterminate++
	case errors.Is(err, synod.ErrConflict) || errors.Is(err, synod.ErrUnavailable):
		// Definitely not applied: leave it out of the history.
		record = false
		s.res.NotApplied++
	default:
		s.violation("p%d: %s: unexpected error %v", pp.idx, describeInput(in), err)
		record = false
	}
	if pp.finalLeft > 0 && !(err == nil) {
		s.violation("p%d: final read of %s failed: %v", pp.idx, in.Key, err)
	}
	if record {
		s.res.History = append(s.res.History, op)
	}
	if pp.abandoned {
		s.res.TimedOut++
	}
	pp.pr, pp.lr = nil, nil
	if pp.operator {
		s.op.rescanned(in.Key, err == nil)
		return
	}
	s.nextOp(pp, s.rng.Int64N(2*s.cfg.MaxDelay+1))
}

// nextOp counts the operation just ended and starts the next one after delay.
func (s *sim) nextOp(pp *simProposer, delay int64) {
	switch {
	case pp.finalLeft > 0:
		if pp.finalLeft--; pp.finalLeft > 0 {
			s.schedule(1, event{kind: evStart, p: pp.idx})
		}
	case pp.opsLeft > 0:
		if pp.opsLeft--; pp.opsLeft > 0 {
			s.schedule(delay, event{kind: evStart, p: pp.idx})
		} else if s.running--; s.running == 0 {
			s.finish()
		}
	}
}

// crashProposer restarts pp as a new process: a new Proposer with a fresh
// nonce in its ID and a counter back at zero, no fast-path entries, and its
// operation in flight cut short. That operation's messages stay on the
// network, so it may still take effect: it is recorded as indeterminate (a
// read, which changes nothing, is left out).
func (s *sim) crashProposer(pp *simProposer) {
	p, err := synod.NewProposer(synod.ProposerID(fmt.Sprintf("p%d", pp.idx), s.rng.Uint64()), pp.p.Config(), pp.opts...)
	if err != nil {
		s.violation("restart p%d: %v", pp.idx, err)
		return
	}
	s.tracef("crash p%d, restart as %s", pp.idx, p.ID())
	pp.p = p
	pp.token++ // its timers die with it
	s.res.ProposerCrashes++
	if pp.lr != nil {
		pp.lr = nil // a read changes nothing: leave it out
		s.nextOp(pp, s.cfg.PhaseTimeout)
		return
	}
	if pp.pr == nil {
		return
	}
	if pp.in.Kind != OpRead {
		s.res.History = append(s.res.History, porcupine.Operation{
			ClientId: pp.idx, Input: pp.in, Call: pp.call,
			Output: RegisterOutput{Unknown: true}, Return: IndeterminateReturn,
		})
		s.res.Indeterminate++
	}
	pp.pr = nil
	s.nextOp(pp, s.cfg.PhaseTimeout)
}
