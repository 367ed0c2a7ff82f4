package viz

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/protosynod/protosynod/synod"
)

// Acceptors and proposers of every session: three acceptors with majority
// quorums, and one proposer per general.
var (
	AcceptorIDs = []string{"a1", "a2", "a3"}
	ProposerIDs = []string{"p0", "p1"}
)

// Acts of a Choice.
const (
	ActSubmit  = "submit"  // give Proposer the command Cmd
	ActDeliver = "deliver" // deliver message Msg
	ActDrop    = "drop"    // lose message Msg
	ActDup     = "dup"     // duplicate reply Msg (transports never duplicate requests)
	ActCrash   = "crash"   // crash Acceptor; its durable state stays
	ActRestart = "restart" // restart Acceptor
	ActRetry   = "retry"   // Proposer's attempt was refused or timed out: retry
	ActAbandon = "abandon" // Proposer's deadline passed: abandon its proposal
)

// Choice is one step of a session, chosen by the reader or by auto mode. A
// session is entirely determined by its seed and its choices, so undo is a
// replay of all choices but the last.
type Choice struct {
	Act      string `json:"act"`
	Proposer int    `json:"proposer,omitempty"`
	Cmd      string `json:"cmd,omitempty"`
	Msg      int    `json:"msg,omitempty"`
	Acceptor string `json:"acceptor,omitempty"`
}

// Message is a request or a reply in flight.
type Message struct {
	ID       int
	Proposer int    // the proposer that sent the request or receives the reply
	Acceptor string // the acceptor that receives the request or sent the reply

	// Exactly one is set.
	Prepare      *synod.PrepareRequest
	Accept       *synod.AcceptRequest
	PrepareReply *synod.PrepareReply
	AcceptReply  *synod.AcceptReply
}

// IsReply reports whether m goes from an acceptor to a proposer.
func (m *Message) IsReply() bool { return m.PrepareReply != nil || m.AcceptReply != nil }

// Kind is prepare, accept, promise (a prepare reply) or accepted (an accept reply).
func (m *Message) Kind() string {
	switch {
	case m.Prepare != nil:
		return "prepare"
	case m.Accept != nil:
		return "accept"
	case m.PrepareReply != nil:
		return "promise"
	}
	return "accepted"
}

// Key is the register the message is about.
func (m *Message) Key() string {
	switch {
	case m.Prepare != nil:
		return m.Prepare.Key
	case m.Accept != nil:
		return m.Accept.Key
	case m.PrepareReply != nil:
		return m.PrepareReply.Key
	}
	return m.AcceptReply.Key
}

// Ballot is the ballot of the request, or of the request a reply answers.
func (m *Message) Ballot() synod.Ballot {
	switch {
	case m.Prepare != nil:
		return m.Prepare.Ballot
	case m.Accept != nil:
		return m.Accept.Ballot
	case m.PrepareReply != nil:
		return m.PrepareReply.Ballot
	}
	return m.AcceptReply.Ballot
}

// Op is one command a general gave, from submission to result: an entry of the
// timeline of completed operations.
type Op struct {
	ID       int
	Proposer int
	Cmd      string
	Key      string
	Call     int // the step that submitted it
	Return   int // the step that completed it; 0 while it runs
	Running  bool
	Attempts int
	FastPath bool   // it began on the one-round-trip path
	Value    []byte // the committed value
	Err      error  // the change function's error, or the proposal's
	Ran      int    // how many times its change function ran
}

// Done reports whether the operation completed.
func (o *Op) Done() bool { return o.Return > 0 }

// Indeterminate reports whether the operation may or may not have taken effect.
func (o *Op) Indeterminate() bool { return errors.Is(o.Err, synod.ErrIndeterminate) }

// NotApplied reports whether the proposal ended without taking effect
// (conflict, no quorum). An error that also matches ErrIndeterminate (a
// quorum out of reach after the value may have landed) is not.
func (o *Op) NotApplied() bool {
	return !o.Indeterminate() && (errors.Is(o.Err, synod.ErrConflict) || errors.Is(o.Err, synod.ErrUnavailable))
}

// Event is what one step did, with the protocol functions it ran.
type Event struct {
	Step   int
	Choice Choice
	Lines  []string
	Code   []string // names of the functions it ran, as in source_gen.json
}

type acceptorNode struct {
	id    string
	up    bool
	state map[string]synod.AcceptorState // durable: survives a crash
}

type proposerNode struct {
	index int
	p     *synod.Proposer
	pr    *synod.Proposal
	op    *Op
	queue []*Op
	sent  sentPhase // the last phase broadcast
}

type sentPhase struct {
	ballot synod.Ballot
	status synod.Status
	n      int // attempt number, for a one-round-trip attempt reusing a ballot
}

// recorder collects what the current step does; change functions write to it
// whenever the real Proposal runs them.
type recorder struct{ ev *Event }

func (r *recorder) line(format string, args ...any) {
	r.ev.Lines = append(r.ev.Lines, fmt.Sprintf(format, args...))
}

func (r *recorder) code(names ...string) {
	for _, n := range names {
		if !slices.Contains(r.ev.Code, n) {
			r.ev.Code = append(r.ev.Code, n)
		}
	}
}

// Session is one deterministic run of the real synod code: pure AcceptorState
// rules for the acceptors, Proposer and Proposal step machines for the
// proposers, and a network that delivers, drops and duplicates only what the
// choices say. It is not safe for concurrent use.
type Session struct {
	seed      uint64
	cfg       synod.Config
	acceptors []*acceptorNode
	proposers []*proposerNode
	inflight  []*Message
	nextMsg   int
	ops       []*Op
	events    []Event
	choices   []Choice
	script    []Choice // scripted choices still to step through
	rec       *recorder
}

// New returns an empty session. seed drives auto mode only.
func New(seed uint64) *Session {
	s := &Session{seed: seed, cfg: synod.Config{Acceptors: slices.Clone(AcceptorIDs)}, rec: &recorder{}}
	for _, id := range AcceptorIDs {
		s.acceptors = append(s.acceptors, &acceptorNode{id: id, up: true, state: map[string]synod.AcceptorState{}})
	}
	for i, id := range ProposerIDs {
		p, err := synod.NewProposer(id, s.cfg)
		if err != nil {
			panic(err) // a constant configuration
		}
		s.proposers = append(s.proposers, &proposerNode{index: i, p: p})
	}
	return s
}

// Replay returns the session of seed after choices, with script still to step.
func Replay(seed uint64, choices, script []Choice) (*Session, error) {
	s := New(seed)
	for i, c := range choices {
		if err := s.Do(c); err != nil {
			return nil, fmt.Errorf("choice %d (%+v): %w", i+1, c, err)
		}
	}
	s.script = slices.Clone(script)
	return s, nil
}

// Seed returns the session's seed.
func (s *Session) Seed() uint64 { return s.seed }

// Choices returns the choices made so far.
func (s *Session) Choices() []Choice { return slices.Clone(s.choices) }

// Script returns the scripted choices still to step through.
func (s *Session) Script() []Choice { return slices.Clone(s.script) }

// Ops returns the operations, in submission order.
func (s *Session) Ops() []*Op { return s.ops }

// Events returns what every step did.
func (s *Session) Events() []Event { return s.events }

// InFlight returns the messages in flight, oldest first.
func (s *Session) InFlight() []*Message { return s.inflight }

// AcceptorState returns acceptor id's durable state of key.
func (s *Session) AcceptorState(id, key string) synod.AcceptorState {
	for _, a := range s.acceptors {
		if a.id == id {
			return a.state[key]
		}
	}
	return synod.AcceptorState{}
}

// Undo returns the session without its last choice, replayed from the seed;
// the undone choice goes back to the front of the script.
func (s *Session) Undo() (*Session, error) {
	if len(s.choices) == 0 {
		return s, errors.New("nothing to undo")
	}
	n := len(s.choices) - 1
	return Replay(s.seed, s.choices[:n], append([]Choice{s.choices[n]}, s.script...))
}

// Step applies the next scripted choice, or one auto choice when the script
// is done. It reports false when nothing is left to do.
func (s *Session) Step() (bool, error) {
	if len(s.script) > 0 {
		c := s.script[0]
		if err := s.Do(c); err != nil {
			return false, err
		}
		s.script = s.script[1:]
		return true, nil
	}
	return s.Auto()
}

// Choose applies a choice the reader made by hand. If it is the script's next
// choice, the script moves on; otherwise the reader has left the script,
// which is dropped (its message numbers would no longer fit), and left
// reports so.
func (s *Session) Choose(c Choice) (left bool, err error) {
	if err := s.Do(c); err != nil {
		return false, err
	}
	switch {
	case len(s.script) == 0:
	case s.script[0] == c:
		s.script = s.script[1:]
	default:
		s.script = nil
		return true, nil
	}
	return false, nil
}

// Auto applies one choice drawn from the enabled ones by the seeded random
// source of the session's seed and step: the same session always takes the
// same choice. It reports false when nothing is enabled.
func (s *Session) Auto() (bool, error) {
	r := rand.New(rand.NewPCG(s.seed, uint64(len(s.choices))))
	type weighted struct {
		c Choice
		w int
	}
	var opts []weighted
	down := 0
	for _, a := range s.acceptors {
		if !a.up {
			down++
		}
	}
	for _, m := range s.inflight {
		opts = append(opts, weighted{Choice{Act: ActDeliver, Msg: m.ID}, 40}, weighted{Choice{Act: ActDrop, Msg: m.ID}, 2})
		if m.IsReply() {
			opts = append(opts, weighted{Choice{Act: ActDup, Msg: m.ID}, 2})
		}
	}
	for _, p := range s.proposers {
		if s.needsRetry(p) {
			opts = append(opts, weighted{Choice{Act: ActRetry, Proposer: p.index}, 40})
		}
	}
	for _, a := range s.acceptors {
		switch {
		case a.up && down == 0 && len(s.inflight) > 0:
			opts = append(opts, weighted{Choice{Act: ActCrash, Acceptor: a.id}, 1})
		case !a.up:
			opts = append(opts, weighted{Choice{Act: ActRestart, Acceptor: a.id}, 10})
		}
	}
	total := 0
	for _, o := range opts {
		total += o.w
	}
	if total == 0 {
		return false, nil
	}
	x := r.IntN(total)
	for _, o := range opts {
		if x -= o.w; x < 0 {
			return true, s.Do(o.c)
		}
	}
	panic("unreachable")
}

// Quiesce runs the rest of the script, then delivers every message oldest
// first (to a crashed acceptor, that loses it) and retries proposals that were
// refused or whose messages are all gone, until nothing is in flight and every
// proposer is idle, or maxSteps steps were taken. It returns how many steps it
// took.
func (s *Session) Quiesce(maxSteps int) (int, error) {
	n := 0
	for ; n < maxSteps; n++ {
		if len(s.script) > 0 {
			if _, err := s.Step(); err != nil {
				return n, err
			}
			continue
		}
		c, ok := s.nextQuiet()
		if !ok {
			return n, nil
		}
		if err := s.Do(c); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *Session) nextQuiet() (Choice, bool) {
	if len(s.inflight) > 0 {
		return Choice{Act: ActDeliver, Msg: s.inflight[0].ID}, true
	}
	for _, p := range s.proposers {
		if s.needsRetry(p) {
			return Choice{Act: ActRetry, Proposer: p.index}, true
		}
	}
	return Choice{}, false
}

// Quiet reports whether nothing is in flight and every proposer is idle.
func (s *Session) Quiet() bool {
	if len(s.inflight) > 0 {
		return false
	}
	for _, p := range s.proposers {
		if p.pr != nil {
			return false
		}
	}
	return true
}

// needsRetry reports whether p's proposal was refused, or waits for replies
// that can no longer come (a timeout in a real client).
func (s *Session) needsRetry(p *proposerNode) bool {
	if p.pr == nil {
		return false
	}
	switch p.pr.Status() {
	case synod.StatusRefused:
		return true
	case synod.StatusPreparing, synod.StatusAccepting:
		b := p.pr.Ballot()
		for _, m := range s.inflight {
			if m.Proposer == p.index && m.Ballot() == b {
				return false
			}
		}
		return true
	}
	return false
}

// Do applies one choice and records it. A choice that is not possible now (a
// message no longer in flight, a retry with nothing to retry) is an error and
// changes nothing.
func (s *Session) Do(c Choice) error {
	if err := s.check(c); err != nil {
		return err
	}
	s.events = append(s.events, Event{Step: len(s.choices) + 1, Choice: c})
	s.rec.ev = &s.events[len(s.events)-1]
	defer func() { s.rec.ev = nil }()
	s.choices = append(s.choices, c)
	switch c.Act {
	case ActSubmit:
		s.submit(c.Proposer, c.Cmd)
	case ActDeliver:
		s.deliver(s.take(c.Msg))
	case ActDrop:
		m := s.take(c.Msg)
		s.rec.line("%s dropped: it never arrives", s.describe(m))
	case ActDup:
		m := s.find(c.Msg)
		d := *m
		d.ID = s.newID()
		s.inflight = append(s.inflight, &d)
		s.rec.line("%s duplicated as #%d", s.describe(m), d.ID)
	case ActCrash:
		a := s.acceptor(c.Acceptor)
		a.up = false
		s.rec.line("%s crashes: requests to it are lost; its durable state stays on disk", a.id)
	case ActRestart:
		a := s.acceptor(c.Acceptor)
		a.up = true
		s.rec.line("%s restarts with the state it had persisted", a.id)
	case ActRetry:
		p := s.proposers[c.Proposer]
		why := "timed out"
		if p.pr.Status() == synod.StatusRefused {
			why = "was refused"
		}
		old := p.pr.Ballot()
		p.pr.Retry(p.p)
		s.rec.code("Proposal.Retry", "Proposal.start")
		p.op.Attempts = p.pr.Attempts()
		s.rec.line("%s: attempt at %v %s; after backoff it retries at %v", ProposerIDs[p.index], old, why, p.pr.Ballot())
		s.settle(p)
	case ActAbandon:
		p := s.proposers[c.Proposer]
		err := p.pr.Abandon()
		s.rec.code("Proposal.Abandon")
		s.rec.line("%s: deadline passed, proposal abandoned: %v", ProposerIDs[p.index], err)
		s.settle(p)
	}
	return nil
}

func (s *Session) check(c Choice) error {
	proposer := func() error {
		if c.Proposer < 0 || c.Proposer >= len(s.proposers) {
			return fmt.Errorf("no proposer %d", c.Proposer)
		}
		return nil
	}
	switch c.Act {
	case ActSubmit:
		if err := proposer(); err != nil {
			return err
		}
		_, _, _, err := command(c.Proposer, c.Cmd)
		return err
	case ActDeliver, ActDrop, ActDup:
		m := s.find(c.Msg)
		if m == nil {
			return fmt.Errorf("message #%d is not in flight", c.Msg)
		}
		if c.Act == ActDup && !m.IsReply() {
			return fmt.Errorf("message #%d is a request: a transport delivers a request at most once", c.Msg)
		}
	case ActCrash, ActRestart:
		a := s.acceptor(c.Acceptor)
		if a == nil {
			return fmt.Errorf("no acceptor %q", c.Acceptor)
		}
		if a.up != (c.Act == ActCrash) {
			return fmt.Errorf("acceptor %s is already %s", a.id, map[bool]string{true: "up", false: "down"}[a.up])
		}
	case ActRetry, ActAbandon:
		if err := proposer(); err != nil {
			return err
		}
		pr := s.proposers[c.Proposer].pr
		if pr == nil || pr.Status() == synod.StatusDone || pr.Status() == synod.StatusApply {
			return fmt.Errorf("proposer %d has nothing to %s", c.Proposer, c.Act)
		}
	default:
		return fmt.Errorf("unknown act %q", c.Act)
	}
	return nil
}

func (s *Session) newID() int {
	s.nextMsg++
	return s.nextMsg
}

func (s *Session) find(id int) *Message {
	for _, m := range s.inflight {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (s *Session) take(id int) *Message {
	for i, m := range s.inflight {
		if m.ID == id {
			s.inflight = slices.Delete(s.inflight, i, i+1)
			return m
		}
	}
	return nil
}

func (s *Session) acceptor(id string) *acceptorNode {
	for _, a := range s.acceptors {
		if a.id == id {
			return a
		}
	}
	return nil
}

func (s *Session) submit(p int, cmd string) {
	key, _, _, _ := command(p, cmd)
	op := &Op{ID: len(s.ops) + 1, Proposer: p, Cmd: cmd, Key: key, Call: len(s.choices)}
	s.ops = append(s.ops, op)
	pn := s.proposers[p]
	pn.queue = append(pn.queue, op)
	s.rec.line("%s tells %s: %s (operation %d)", Generals[p], ProposerIDs[p], describeCmd(p, cmd), op.ID)
	if pn.pr == nil {
		s.begin(pn)
	} else {
		s.rec.line("%s is busy: operation %d waits", ProposerIDs[p], op.ID)
	}
}

func describeCmd(p int, cmd string) string {
	switch cmd {
	case CmdSign:
		return Generals[p] + " signs the launch"
	case CmdRevoke:
		return Generals[p] + " revokes his signature"
	case CmdInc:
		return "counter + 1"
	}
	return cmd
}

// begin starts the proposal of p's next queued operation.
func (s *Session) begin(p *proposerNode) {
	op := p.queue[0]
	p.queue = p.queue[1:]
	_, f, fn, _ := command(p.index, op.Cmd)
	rec := s.rec
	wrapped := func(cur []byte) ([]byte, error) {
		op.Ran++
		rec.code(fn)
		v, err := f(cur)
		if err != nil {
			rec.line("%s(%s) refuses: %v", fn, describeValue(op.Key, cur), err)
		} else {
			rec.line("%s(%s) = %s", fn, describeValue(op.Key, cur), describeValue(op.Key, v))
		}
		return v, err
	}
	p.op, op.Running = op, true
	p.pr = p.p.Begin(op.Key, wrapped)
	p.sent = sentPhase{}
	op.Attempts = p.pr.Attempts()
	s.rec.code("Proposer.Begin")
	if p.pr.Status() == synod.StatusApply {
		op.FastPath = true
		s.rec.line("%s begins operation %d on the one-round-trip path: a quorum already promised %v", ProposerIDs[p.index], op.ID, p.pr.Ballot())
	} else {
		s.rec.code("Proposal.start")
		s.rec.line("%s begins operation %d with ballot %v", ProposerIDs[p.index], op.ID, p.pr.Ballot())
	}
	s.settle(p)
}

// settle runs what a proposal does without the network, as synod.Client does:
// Apply, broadcasting a new phase, Complete, and beginning the next operation.
func (s *Session) settle(p *proposerNode) {
	for p.pr != nil {
		pr := p.pr
		switch st := pr.Status(); st {
		case synod.StatusApply:
			pr.Apply()
			s.rec.code("Proposal.Apply")
			if pr.Status() == synod.StatusAccepting {
				s.rec.line("%s: accept %v with value %s", ProposerIDs[p.index], pr.Ballot(), describeValue(pr.Key(), pr.Request().Accept.Value))
			}
		case synod.StatusPreparing, synod.StatusAccepting:
			sent := sentPhase{pr.Ballot(), st, pr.Attempts()}
			if p.sent == sent {
				return
			}
			p.sent = sent
			req := pr.Request()
			for _, a := range s.cfg.Acceptors {
				m := &Message{ID: s.newID(), Proposer: p.index, Acceptor: a}
				if req.Prepare != nil {
					r := *req.Prepare
					m.Prepare = &r
				} else {
					r := *req.Accept
					m.Accept = &r
				}
				s.inflight = append(s.inflight, m)
			}
			s.rec.line("%s sends %s %v to %d acceptors", ProposerIDs[p.index], map[bool]string{true: "prepare", false: "accept"}[req.Prepare != nil], pr.Ballot(), len(s.cfg.Acceptors))
			return
		case synod.StatusRefused:
			if p.sent.status != synod.StatusRefused {
				p.sent.status = synod.StatusRefused
				s.rec.line("%s: a quorum is out of reach at %v; it backs off, then retries", ProposerIDs[p.index], pr.Ballot())
			}
			return
		case synod.StatusDone:
			p.p.Complete(pr)
			s.rec.code("Proposer.Complete")
			op := p.op
			op.Value, op.Err = pr.Result()
			op.Attempts, op.Running, op.Return = pr.Attempts(), false, len(s.choices)
			s.rec.line("operation %d done: %s", op.ID, s.describeResult(op))
			if next, _, ok := p.p.Cached(pr.Key()); ok {
				s.rec.line("%s caches the one-round-trip ballot %v for %s", ProposerIDs[p.index], next, pr.Key())
			}
			p.pr, p.op = nil, nil
			if len(p.queue) > 0 {
				s.begin(p)
				return
			}
		}
	}
}

func (s *Session) describeResult(op *Op) string {
	switch {
	case !op.Done():
		return "running"
	case op.Indeterminate():
		return "indeterminate: may or may not have taken effect"
	case op.NotApplied():
		return "not applied: " + op.Err.Error()
	case op.Err != nil:
		return fmt.Sprintf("refused (%v); value %s written back", op.Err, describeValue(op.Key, op.Value))
	}
	return describeValue(op.Key, op.Value)
}

// deliver hands m to its receiver and runs the rule or step it triggers.
func (s *Session) deliver(m *Message) {
	if !m.IsReply() {
		a := s.acceptor(m.Acceptor)
		if !a.up {
			s.rec.line("%s arrives at %s, which is down: lost", s.describe(m), a.id)
			return
		}
		st := a.state[m.Key()]
		r := &Message{ID: s.newID(), Proposer: m.Proposer, Acceptor: a.id}
		if m.Prepare != nil {
			ns, rep, _ := st.Prepare(a.id, *m.Prepare)
			a.state[m.Key()], r.PrepareReply = ns, &rep
			s.rec.code("AcceptorState.Prepare")
			if rep.OK {
				s.rec.line("%s promises %v for %s (accepted %v)", a.id, m.Prepare.Ballot, m.Key(), rep.Accepted)
			} else {
				s.rec.line("%s refuses prepare %v: it has seen %v", a.id, m.Prepare.Ballot, rep.Seen)
			}
		} else {
			ns, rep, _ := st.Accept(a.id, *m.Accept)
			a.state[m.Key()], r.AcceptReply = ns, &rep
			s.rec.code("AcceptorState.Accept")
			if rep.OK {
				s.rec.line("%s accepts %v = %s and promises %v", a.id, m.Accept.Ballot, describeValue(m.Key(), m.Accept.Value), ns.Promised)
			} else {
				s.rec.line("%s refuses accept %v: it has seen %v", a.id, m.Accept.Ballot, rep.Seen)
			}
		}
		s.inflight = append(s.inflight, r)
		return
	}
	p := s.proposers[m.Proposer]
	if p.pr == nil {
		s.rec.line("%s arrives at %s, which has no proposal in progress: ignored", s.describe(m), ProposerIDs[p.index])
		return
	}
	y0, n0 := p.pr.Votes()
	st0 := p.pr.Status()
	if m.PrepareReply != nil {
		p.pr.OnPrepareReply(*m.PrepareReply)
		s.rec.code("Proposal.OnPrepareReply", "Proposal.vote")
	} else {
		p.pr.OnAcceptReply(*m.AcceptReply)
		s.rec.code("Proposal.OnAcceptReply", "Proposal.vote")
	}
	if y, n := p.pr.Votes(); y == y0 && n == n0 && st0 == p.pr.Status() {
		s.rec.line("%s: %s ignored (another attempt or phase, or a duplicate)", ProposerIDs[p.index], s.describe(m))
	} else {
		s.rec.line("%s counts %s", ProposerIDs[p.index], s.describe(m))
	}
	s.settle(p)
}

// describe names a message for the event log.
func (s *Session) describe(m *Message) string {
	switch {
	case m.Prepare != nil:
		return fmt.Sprintf("#%d prepare %v %s→%s", m.ID, m.Prepare.Ballot, ProposerIDs[m.Proposer], m.Acceptor)
	case m.Accept != nil:
		return fmt.Sprintf("#%d accept %v %s→%s", m.ID, m.Accept.Ballot, ProposerIDs[m.Proposer], m.Acceptor)
	case m.PrepareReply != nil:
		if m.PrepareReply.OK {
			return fmt.Sprintf("#%d promise %v %s→%s", m.ID, m.PrepareReply.Ballot, m.Acceptor, ProposerIDs[m.Proposer])
		}
		return fmt.Sprintf("#%d refusal of prepare %v %s→%s", m.ID, m.PrepareReply.Ballot, m.Acceptor, ProposerIDs[m.Proposer])
	}
	if m.AcceptReply.OK {
		return fmt.Sprintf("#%d accepted %v %s→%s", m.ID, m.AcceptReply.Ballot, m.Acceptor, ProposerIDs[m.Proposer])
	}
	return fmt.Sprintf("#%d refusal of accept %v %s→%s", m.ID, m.AcceptReply.Ballot, m.Acceptor, ProposerIDs[m.Proposer])
}
