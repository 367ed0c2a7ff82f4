package synodtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/dedup"
)

// simProposer drives one production synod.Proposer the way synod.Client does,
// with logical timers instead of contexts: a phase without a quorum within
// PhaseTimeout steps is retried after a backoff, and a round still running at
// its deadline is abandoned. Like a Client used by several goroutines, it
// has Callers callers, each with one call at a time; it runs one round at a
// time, and the calls that arrive meanwhile queue: the next round takes the
// first queued call with the later ones of its key and kind (change or read)
// and applies them as one batch (synod.Proposer.BeginBatch), as the Client
// does for the calls of a key queued behind its running round.
type simProposer struct {
	idx       int
	p         *synod.Proposer
	opts      []synod.ProposerOption
	pr        *synod.Proposal // nil between rounds and during a lean read
	lr        leanReader      // the lean read in flight, if any
	readID    uint64          // the lean read's ID, to ignore replies to earlier reads
	lrStall   bool            // the lean read's stall wait is scheduled
	batch     []*simCall      // the calls of the round or lean read in flight
	queue     []*simCall      // calls waiting for a round
	callers   []*simCaller
	deadline  int64  // the round's: the earliest of its calls'
	token     uint64 // invalidates timers set for an earlier phase
	seen      map[string]string
	finalLeft int
	made      int  // values made, for unique values
	abandoned bool // the round reached its deadline
	operator  bool // the operator's proposer: it runs the rescans

	// Thrifty phases (SimConfig.Thrifty).
	ph       simPhase
	all      bool             // a phase of the round timed out: the next go to everyone
	phases   uint64           // phases started, to tell a stall timer's phase
	suspects map[string]int64 // acceptor -> step until which subsets avoid it
	near     [][]string       // acceptors its subsets take first (see simNear)
}

// simPhase is the phase in flight of a thrifty proposer: its request, the
// acceptors it went to first and the others, and what it heard.
type simPhase struct {
	accept   bool
	prep     synod.PrepareRequest
	acc      synod.AcceptRequest
	first    []string
	rest     []string
	hedged   bool
	refused  bool            // a reply of first was not a yes
	delayed  bool            // hedged once the hedge delay passed
	withheld bool            // rest must never get the request (Withhold)
	stalling bool            // a quorum answered undecided: the stall wait runs
	heard    map[string]bool // acceptors that answered (Thrifty)
	answered []string        // acceptors that answered, with a vote or not
}

// simCaller is one of a simulated client's callers: a goroutine that makes
// one call after the other.
type simCaller struct {
	slot    int
	opsLeft int
	seq     uint64 // its exactly-once sequence number
}

// simCall is one caller's operation, queued or in a round.
type simCall struct {
	slot     int
	in       RegisterInput
	call     int64
	deadline int64
	f        synod.ChangeFunc
	retried  bool // an exactly-once retry followed an indeterminate attempt
}

func (pp *simProposer) busy() bool { return pp.pr != nil || pp.lr != nil }

// clientID is the porcupine client of a caller: one per caller, since each
// makes one call at a time.
func (s *sim) clientID(pp *simProposer, slot int) int { return pp.idx*s.cfg.Callers + slot }

// simDedupLimit is how many senders a register remembers in ExactlyOnce runs:
// more than there are callers, so no entry in use is evicted.
const simDedupLimit = 64

// startOp makes caller slot of pp call its next operation.
func (s *sim) startOp(pp *simProposer, slot int) {
	c := &simCall{slot: slot, call: s.now}
	switch {
	case pp.operator:
		if len(s.op.rescan) == 0 || pp.busy() || len(pp.queue) > 0 {
			return
		}
		c.in = RegisterInput{Kind: OpRead, Key: s.op.rescan[0]}
		c.deadline = s.now + s.cfg.OpTimeout
	case pp.finalLeft > 0 && slot == 0:
		c.in = RegisterInput{Kind: OpRead, Key: s.keys[len(s.keys)-pp.finalLeft]}
		c.deadline = s.now + 4*s.cfg.OpTimeout
	case pp.callers[slot].opsLeft > 0:
		key := s.keys[s.rng.IntN(len(s.keys))]
		pp.made++
		val := fmt.Sprintf("p%d.%d", pp.idx, pp.made)
		switch r := s.rng.IntN(10); {
		case s.cfg.Deletes && s.rng.IntN(6) == 0:
			c.in = RegisterInput{Kind: OpDelete, Key: key}
		case r < 3:
			c.in = RegisterInput{Kind: OpRead, Key: key}
		case r < 5:
			c.in = RegisterInput{Kind: OpWrite, Key: key, Arg: val}
		case r < 8:
			c.in = RegisterInput{Kind: OpCAS, Key: key, Arg: val, Old: pp.seen[key]}
		default:
			c.in = RegisterInput{Kind: OpAppend, Key: key, Arg: "[" + val + "]"}
		}
		c.deadline = s.now + s.cfg.OpTimeout
	default:
		return
	}
	c.f = changeFunc(c.in)
	if s.cfg.ExactlyOnce && c.f != nil {
		// One sender per simulated caller; its sequence numbers grow with
		// every operation it makes, and it has one change in flight.
		cl := pp.callers[slot]
		cl.seq++
		c.f = dedup.Wrap(dedup.ID{Sender: fmt.Sprintf("p%d.%d", pp.idx, slot), Seq: cl.seq}, c.f, simDedupLimit)
	}
	if c.in.Kind != OpRead {
		s.res.Changes++
	}
	s.tracef("p%d/%d call %s", pp.idx, slot, describeInput(c.in))
	pp.queue = append(pp.queue, c)
	if !pp.busy() {
		s.nextBatch(pp)
	}
}

// nextBatch starts pp's next round, if a call waits for one: as the Client
// does, it drops the calls whose deadline passed while they queued and takes
// the first call with the later ones of its key and kind (all of them, or
// only the first without batching).
func (s *sim) nextBatch(pp *simProposer) {
	var batch []*simCall
	rest := pp.queue[:0]
	for _, c := range pp.queue {
		switch {
		case s.now >= c.deadline:
			// Its context ended while it queued: dropped, never run.
			s.tracef("p%d/%d dropped %s", pp.idx, c.slot, describeInput(c.in))
			s.res.NotApplied++
			s.res.Dropped++
			if pp.operator {
				s.op.rescanned(c.in.Key, false)
			} else {
				s.nextOp(pp, c.slot, 0)
			}
		case len(batch) == 0 || (!s.cfg.NoBatching && c.in.Key == batch[0].in.Key && (c.f == nil) == (batch[0].f == nil)):
			batch = append(batch, c)
		default:
			rest = append(rest, c)
		}
	}
	clear(pp.queue[len(rest):])
	pp.queue = rest
	if len(batch) == 0 {
		return
	}
	pp.batch, pp.abandoned = batch, false
	pp.deadline = batch[0].deadline
	for _, c := range batch[1:] {
		pp.deadline = min(pp.deadline, c.deadline)
	}
	key := batch[0].in.Key
	if batch[0].f == nil {
		if len(batch) == 1 && s.cfg.LeanReads && !pp.operator { // a rescan is a full round
			s.startLeanRead(pp)
			return
		}
		pp.pr = pp.p.BeginBatch(key, nil)
		pp.all = false
	} else {
		fs := make([]synod.ChangeFunc, len(batch))
		for i, c := range batch {
			fs[i] = c.f
		}
		pp.pr = pp.p.BeginBatch(key, s.breakBatch(fs))
	}
	pp.all = false
	if len(batch) > 1 {
		s.res.Batches++
		s.res.Batched += len(batch)
	}
	s.tracef("p%d begin %s at %v (%s)", pp.idx, describeBatch(batch), pp.pr.Ballot(), pp.pr.Status())
	s.drive(pp)
}

// breakBatch applies FaultBatchLastOnly: the batch commits only its last
// function, applied to the value the batch began from, while the earlier
// callers still get the values their functions returned.
func (s *sim) breakBatch(fs []synod.ChangeFunc) []synod.ChangeFunc {
	if s.cfg.Fault != FaultBatchLastOnly || len(fs) < 2 {
		return fs
	}
	var orig []byte
	first, last := fs[0], fs[len(fs)-1]
	fs[0] = func(cur []byte) ([]byte, error) { orig = cur; return first(cur) }
	fs[len(fs)-1] = func([]byte) ([]byte, error) { return last(orig) }
	return fs
}

func describeBatch(batch []*simCall) string {
	var b strings.Builder
	for i, c := range batch {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d:%s", c.slot, describeInput(c.in))
	}
	return b.String()
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
			s.startPhase(pp)
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
		if pp.lrStall && pp.lr.Status() == synod.ReadPending {
			s.res.ReadStalls++
		}
		s.tracef("p%d read#%d timeout", pp.idx, pp.readID)
		pp.lr.GiveUp()
		s.leanReadStep(pp)
		return
	}
	if pp.pr == nil || token != pp.token {
		return
	}
	s.tracef("p%d phase timeout (%s)", pp.idx, pp.pr.Status())
	pp.all = true
	// The phase is over: its stall wait, running or not, must not end it again.
	pp.ph.stalling = true
	pp.phases++
	s.endPhase(pp)
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

// finishOp records the outcome of every call of pp's finished round in the
// history and starts the next round.
func (s *sim) finishOp(pp *simProposer) {
	pr := pp.pr
	v, err := pr.Result()
	if s.cfg.ExactlyOnce && pp.batch[0].f != nil && errors.Is(err, synod.ErrIndeterminate) {
		// As dedup.Client does: each caller calls again with the same
		// change and ID, until its outcome is known or its deadline passes.
		var again []*simCall
		for _, c := range pp.batch {
			if s.now < c.deadline {
				s.res.Retried++
				c.retried = true
				again = append(again, c)
				continue
			}
			s.endOp(pp, c, nil, err, pr.Ballot())
		}
		pp.pr, pp.batch = nil, nil
		pp.queue = append(again, pp.queue...)
		for _, c := range again {
			s.tracef("p%d/%d retries %s with its ID", pp.idx, c.slot, describeInput(c.in))
		}
		s.nextBatch(pp)
		return
	}
	for i, c := range pp.batch {
		cv, cerr := v, err
		if c.f != nil {
			cv, cerr = pr.Outcome(i)
			if s.cfg.Fault == FaultBatchFinalValue && cerr == nil && len(pp.batch) > 1 {
				cv = v // every caller gets the batch's final value
			}
		}
		s.endOp(pp, c, cv, cerr, pr.Ballot())
	}
	pp.pr, pp.batch = nil, nil
	s.nextBatch(pp)
}

// endOp records the outcome of call c of pp, whose round's last attempt had
// ballot b (for a lean read: the accepted ballot it read), and lets its
// caller move on.
func (s *sim) endOp(pp *simProposer, c *simCall, v []byte, err error, b synod.Ballot) {
	in := c.in
	op := porcupine.Operation{ClientId: s.clientID(pp, c.slot), Input: in, Call: c.call, Return: s.now}
	s.tracef("p%d/%d done %s at %v: %q, %v", pp.idx, c.slot, describeInput(in), b, v, err)
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
		s.ack(in.Key, b)
	case err == nil || (in.Kind == OpCAS && errors.Is(err, errCASMismatch)):
		op.Output = RegisterOutput{Value: string(v), OK: err == nil}
		pp.seen[in.Key] = string(v)
		s.res.Committed++
		if in.Kind == OpDelete {
			s.res.Deleted++
		}
		s.ack(in.Key, b)
		s.checkDurable(in.Key)
	case errors.Is(err, synod.ErrIndeterminate) || (c.retried && notApplied(err)):
		// After an exactly-once retry, a retry that was not applied says
		// nothing of the attempt before it.
		if in.Kind == OpRead {
			s.violation("p%d: read of %s indeterminate", pp.idx, in.Key)
		}
		op.Output = RegisterOutput{Unknown: true}
		op.Return = IndeterminateReturn
		s.res.Indeterminate++
	case notApplied(err):
		// Definitely not applied: leave it out of the history.
		record = false
		s.res.NotApplied++
	default:
		s.violation("p%d: %s: unexpected error %v", pp.idx, describeInput(in), err)
		record = false
	}
	if pp.finalLeft > 0 && c.slot == 0 && !(err == nil) {
		s.violation("p%d: final read of %s failed: %v", pp.idx, in.Key, err)
	}
	if record {
		s.res.History = append(s.res.History, op)
	}
	if pp.abandoned {
		s.res.TimedOut++
	}
	if pp.operator {
		s.op.rescanned(in.Key, err == nil)
		return
	}
	s.nextOp(pp, c.slot, s.rng.Int64N(2*s.cfg.MaxDelay+1))
}

// notApplied reports whether err (not ErrIndeterminate) says the change was
// not applied: a conflict, too few acceptors reachable, or too few whose
// storage works (StoreFaults).
func notApplied(err error) bool {
	return errors.Is(err, synod.ErrConflict) || errors.Is(err, synod.ErrUnavailable) || errors.Is(err, synod.ErrStorage)
}

// nextOp counts caller slot's operation just ended and starts its next one
// after delay.
func (s *sim) nextOp(pp *simProposer, slot int, delay int64) {
	if pp.operator {
		return
	}
	cl := pp.callers[slot]
	switch {
	case pp.finalLeft > 0 && slot == 0:
		if pp.finalLeft--; pp.finalLeft > 0 {
			s.schedule(1, event{kind: evStart, p: pp.idx})
		}
	case cl.opsLeft > 0:
		if cl.opsLeft--; cl.opsLeft > 0 {
			s.schedule(delay, event{kind: evStart, p: pp.idx, c: slot})
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
	pp.suspects, pp.all = nil, false
	s.res.ProposerCrashes++
	calls := append(pp.batch, pp.queue...)
	if pp.pr != nil {
		for _, c := range pp.batch {
			if c.in.Kind == OpRead {
				continue // a read changes nothing: leave it out
			}
			s.res.History = append(s.res.History, porcupine.Operation{
				ClientId: s.clientID(pp, c.slot), Input: c.in, Call: c.call,
				Output: RegisterOutput{Unknown: true}, Return: IndeterminateReturn,
			})
			s.res.Indeterminate++
		}
	}
	// A lean read changes nothing, and queued calls never ran.
	pp.pr, pp.lr, pp.batch, pp.queue = nil, nil, nil, nil
	for _, c := range calls {
		if pp.operator {
			// The operator's rescan goes on with a new call.
			s.schedule(s.cfg.PhaseTimeout, event{kind: evStart, p: pp.idx})
			continue
		}
		s.nextOp(pp, c.slot, s.cfg.PhaseTimeout)
	}
}

// ack records that a call returned the value of ballot b of key, so b must
// stay durable, unless a garbage collection already removed it: a call that
// read the tombstone the collection removes (a lean read answered before
// the acceptors forgot it, say) acknowledges nothing that must last.
func (s *sim) ack(key string, b synod.Ballot) {
	if s.acked[key].Less(b) && b.Counter > s.collectedFloor[key] {
		s.acked[key] = b
	}
}

// startPhase sends pp's current request: to every acceptor of its
// proposal's configuration, or, thrifty, to the key's subset first.
func (s *sim) startPhase(pp *simProposer) {
	pr := pp.pr
	req := pr.Request()
	cfg := pr.Config()
	ph := simPhase{accept: req.Accept != nil, first: cfg.Acceptors}
	if ph.accept {
		ph.acc = *req.Accept
	} else {
		ph.prep = *req.Prepare
	}
	if s.cfg.Thrifty && !pp.all && (s.cfg.ThriftyByKey || pr.OneRoundTrip()) {
		spread, near := pp.p.ID(), pp.near
		if s.cfg.ThriftyByKey {
			spread, near = pr.Key(), nil
		}
		ph.first, ph.rest = synod.ThriftySplitNear(cfg, spread, near, ph.accept, func(id string) bool { return pp.suspects[id] > s.now })
		ph.heard = make(map[string]bool, len(ph.first))
		s.res.ThriftyPhases++
		if len(ph.rest) > 0 {
			s.tracef("p%d thrifty %v, later %v", pp.idx, ph.first, ph.rest)
			s.schedule(s.cfg.HedgeDelay, event{kind: evHedge, p: pp.idx, token: pp.token})
		}
	}
	pp.ph = ph
	pp.phases++
	s.sendPhase(pp, ph.first)
}

func (s *sim) sendPhase(pp *simProposer, to []string) {
	for _, id := range to {
		a := s.idx[id]
		if pp.ph.accept {
			s.send(event{kind: evAccept, p: pp.idx, a: a, acc: pp.ph.acc})
		} else {
			s.send(event{kind: evPrepare, p: pp.idx, a: a, prep: pp.ph.prep})
		}
	}
}

// hedge sends the phase's request to the acceptors outside its subset.
func (s *sim) hedge(pp *simProposer, why string) {
	if pp.ph.hedged || pp.ph.withheld || len(pp.ph.rest) == 0 {
		return
	}
	pp.ph.hedged = true
	s.tracef("p%d hedge (%s) to %v", pp.idx, why, pp.ph.rest)
	s.sendPhase(pp, pp.ph.rest)
}

// allAnswered records who sent reply ev to pp's phase and reports whether
// every acceptor the phase asked has answered, as the Client checks before
// it gives an undecided phase up at once: a thrifty phase not yet hedged
// waits for its hedge instead.
func (s *sim) allAnswered(pp *simProposer, ev event) bool {
	ph := &pp.ph
	from, _, _, ok := phaseReply(pp, ev)
	if !ok {
		return false
	}
	if !slices.Contains(ph.answered, from) {
		ph.answered = append(ph.answered, from)
	}
	asked := len(ph.first)
	if ph.hedged {
		asked += len(ph.rest)
	} else if len(ph.rest) > 0 && !ph.withheld {
		return false
	}
	return len(ph.answered) >= asked
}

// watchStall starts the stall wait of pp's phase once a quorum answered it
// without a decision (synod.Proposal.QuorumHeard), as the Client does.
func (s *sim) watchStall(pp *simProposer) {
	if pp.ph.stalling || !pp.pr.QuorumHeard() {
		return
	}
	pp.ph.stalling = true
	s.schedule(s.stallWait(), event{kind: evStall, p: pp.idx, token: pp.phases})
}

// onStall gives pp's phase up, as a phase timeout would, if it is still the
// phase whose stall wait ran out and still undecided.
func (s *sim) onStall(pp *simProposer, phase uint64) {
	if pp.pr == nil || phase != pp.phases || !pp.pr.QuorumHeard() {
		return
	}
	s.res.Stalls++
	s.tracef("p%d phase stalled: a quorum answered undecided", pp.idx)
	s.onTimeout(pp, pp.token)
}

func (s *sim) suspect(pp *simProposer, id string) {
	if pp.suspects == nil {
		pp.suspects = make(map[string]int64)
	}
	pp.suspects[id] = s.now + s.cfg.SuspectFor
}

// onHedgeDelay hedges a phase still pending when its delay passed.
func (s *sim) onHedgeDelay(pp *simProposer, token uint64) {
	if pp.pr == nil || token != pp.token || pp.ph.hedged {
		return
	}
	if st := pp.pr.Status(); st != synod.StatusPreparing && st != synod.StatusAccepting {
		return
	}
	pp.ph.delayed = true
	s.res.DelayHedges++
	s.hedge(pp, "delay")
}

// phaseReply returns who sent reply ev (a prepare or accept reply), whether
// it is a yes, and its error; ok is false if ev does not answer pp's current
// phase.
func phaseReply(pp *simProposer, ev event) (from string, yes bool, err error, ok bool) {
	ph := &pp.ph
	var key string
	var b synod.Ballot
	if ev.kind == evPrepareReply {
		r := ev.prepRep
		if ph.accept || r.Ballot != ph.prep.Ballot {
			return "", false, nil, false
		}
		from, key, b, yes, err = r.From, r.Key, r.Ballot, r.OK && r.Err == nil, r.Err
	} else {
		r := ev.accRep
		if !ph.accept || r.Ballot != ph.acc.Ballot {
			return "", false, nil, false
		}
		from, key, b, yes, err = r.From, r.Key, r.Ballot, r.OK && r.Err == nil, r.Err
	}
	return from, yes, err, key == pp.pr.Key() && b == pp.pr.Ballot()
}

// thriftyReply does what a thrifty Client does after feeding a reply of its
// phase to the proposal: it hedges when the reply is not a yes, except for
// an accept whose result may be nowhere, which waits for its subset and is
// withheld from the others if all of it refused.
func (s *sim) thriftyReply(pp *simProposer, ev event) {
	ph := &pp.ph
	if ph.heard == nil || len(ph.rest) == 0 {
		return
	}
	from, yes, err, ok := phaseReply(pp, ev)
	if !ok {
		return
	}
	ph.heard[from] = true
	buggy := s.cfg.Fault == FaultWithholdHedged
	if ph.withheld || ph.hedged && !buggy {
		return // withheld: the others must never get it
	}
	if !yes {
		ph.refused = true
		if err != nil && !errors.Is(err, synod.ErrStaleEpoch) && slices.Contains(ph.first, from) {
			s.suspect(pp, from)
		}
	}
	if !ph.refused {
		return // the subset may still win alone
	}
	if ph.accept && pp.pr.Withhold(ph.rest) {
		ph.withheld = true
		s.res.Withheld++
		s.tracef("p%d withholds %v from %v", pp.idx, ph.acc.Ballot, ph.rest)
		return
	}
	if ph.accept && pp.pr.MayBeNowhere() || ph.hedged {
		return
	}
	s.res.Hedges++
	s.hedge(pp, "not a yes")
}

// endPhase suspects, as the Client does when a phase that hedged on the
// delay ends, the acceptors of its subset still silent.
func (s *sim) endPhase(pp *simProposer) {
	if !pp.ph.delayed {
		return
	}
	pp.ph.delayed = false
	for _, id := range pp.ph.first {
		if !pp.ph.heard[id] {
			s.suspect(pp, id)
		}
	}
}
