package synodtest

import "github.com/protosynod/protosynod/synod"

// leanReader is what the simulation needs of a lean read: synod.LeanRead, or
// one of the deliberately broken reads of FaultLeanReadFewer and
// FaultLeanReadMismatch.
type leanReader interface {
	OnReadReply(synod.ReadReply)
	GiveUp()
	Status() synod.ReadStatus
	Result() ([]byte, synod.Ballot)
	Seen() synod.Ballot
	QuorumHeard() bool
}

var _ leanReader = (*synod.LeanRead)(nil)

// startLeanRead sends a lean read of pp's key to every acceptor, as
// synod.Client.Read does; it falls back to a round when the replies do not
// agree or a phase timeout passes.
func (s *sim) startLeanRead(pp *simProposer) {
	key := pp.batch[0].in.Key
	cfg := pp.p.Config()
	switch s.cfg.Fault {
	case FaultLeanReadFewer:
		pp.lr = &brokenRead{cfg: cfg, key: key, need: max(1, synod.ReadQuorum(cfg)-1)}
	case FaultLeanReadMismatch:
		pp.lr = &brokenRead{cfg: cfg, key: key, need: synod.ReadQuorum(cfg), ignoreMismatch: true}
	default:
		pp.lr = synod.NewLeanRead(cfg, key)
	}
	pp.readID++
	pp.token++
	pp.lrStall = false
	s.tracef("p%d begin lean read#%d %s", pp.idx, pp.readID, key)
	req := synod.ReadRequest{Key: key, Epoch: cfg.Epoch}
	for _, id := range cfg.Acceptors {
		s.send(event{kind: evRead, p: pp.idx, a: s.idx[id], read: req, token: pp.readID})
	}
	s.schedule(min(s.cfg.PhaseTimeout, pp.deadline-s.now), event{kind: evTimeout, p: pp.idx, token: pp.token})
}

// onReadReply feeds a read reply to pp's lean read, if it belongs to it.
func (s *sim) onReadReply(pp *simProposer, ev event) {
	if pp.lr == nil || ev.token != pp.readID {
		return // a reply to an earlier read: its state may predate this one
	}
	pp.lr.OnReadReply(ev.readRep)
	if !pp.lrStall && pp.lr.QuorumHeard() {
		// As the Client does: give a read that a quorum answered without
		// agreeing up after the stall wait, as its phase timeout would.
		pp.lrStall = true
		s.schedule(min(s.stallWait(), pp.deadline-s.now), event{kind: evTimeout, p: pp.idx, token: pp.token})
	}
	s.leanReadStep(pp)
}

// stallWait is the Client's wait for the silent acceptors of a phase or lean
// read that a quorum answered without a decision.
func (s *sim) stallWait() int64 {
	if s.cfg.Thrifty {
		return 2 * s.cfg.HedgeDelay
	}
	return max(1, s.cfg.PhaseTimeout/4)
}

// leanReadStep ends pp's lean read when it is done or must fall back.
func (s *sim) leanReadStep(pp *simProposer) {
	switch pp.lr.Status() {
	case synod.ReadDone:
		v, b := pp.lr.Result()
		s.res.LeanReads++
		pp.token++ // its timer is moot
		s.endOp(pp, pp.batch[0], v, nil, b)
		pp.lr, pp.batch = nil, nil
		s.nextBatch(pp)
	case synod.ReadFallback:
		s.res.LeanFallbacks++
		pp.p.Observe(pp.lr.Seen())
		pp.lr = nil
		pp.pr = pp.p.Begin(pp.batch[0].in.Key, nil)
		s.tracef("p%d read#%d falls back to a round at %v (%s)", pp.idx, pp.readID, pp.pr.Ballot(), pp.pr.Status())
		s.drive(pp)
	}
}

// brokenRead is a lean read with a deliberate safety bug, to show that the
// checker catches one: it answers with fewer than max(Q1, Q2) matching
// replies (need), or ignores a mismatch and answers with the value of the
// highest accepted ballot once need acceptors answered.
type brokenRead struct {
	cfg            synod.Config
	key            string
	need           int
	ignoreMismatch bool

	voted  map[string]bool
	count  map[synod.Ballot]int
	heard  int
	high   synod.Ballot
	value  []byte
	seen   synod.Ballot
	stat   synod.ReadStatus
	ballot synod.Ballot
}

func (r *brokenRead) OnReadReply(rep synod.ReadReply) {
	if r.stat != synod.ReadPending || rep.Key != r.key || rep.Err != nil || r.voted[rep.From] {
		return
	}
	if r.voted == nil {
		r.voted, r.count = map[string]bool{}, map[synod.Ballot]int{}
	}
	r.voted[rep.From] = true
	r.heard++
	r.count[rep.Accepted]++
	if r.seen.Less(rep.Promised) {
		r.seen = rep.Promised
	}
	if r.heard == 1 || r.high.Less(rep.Accepted) {
		r.high, r.value = rep.Accepted, rep.Value
	}
	switch {
	case r.ignoreMismatch && r.heard >= r.need:
		r.stat, r.ballot = synod.ReadDone, r.high
	case !r.ignoreMismatch && r.count[rep.Accepted] >= r.need:
		r.stat, r.ballot, r.value = synod.ReadDone, rep.Accepted, rep.Value
	case r.heard == len(r.cfg.Acceptors):
		r.stat = synod.ReadFallback
	}
}

func (r *brokenRead) GiveUp() {
	if r.stat == synod.ReadPending {
		r.stat = synod.ReadFallback
	}
}

func (r *brokenRead) Status() synod.ReadStatus { return r.stat }

func (r *brokenRead) Result() ([]byte, synod.Ballot) { return r.value, r.ballot }

func (r *brokenRead) Seen() synod.Ballot { return r.seen }

func (r *brokenRead) QuorumHeard() bool { return r.stat == synod.ReadPending && r.heard >= r.need }
