package synod

// ReadStatus is where a LeanRead stands.
type ReadStatus uint8

const (
	// ReadPending: broadcast Request, feed replies to OnReadReply.
	ReadPending ReadStatus = iota
	// ReadDone: enough acceptors agree; Result is the register's value.
	ReadDone
	// ReadFallback: the replies cannot agree (or too few came): read through
	// a full round instead.
	ReadFallback
)

// String implements fmt.Stringer.
func (s ReadStatus) String() string {
	switch s {
	case ReadPending:
		return "ReadPending"
	case ReadDone:
		return "ReadDone"
	case ReadFallback:
		return "ReadFallback"
	}
	return "ReadStatus(?)"
}

// LeanRead is one read of one key with no disk write: it asks every acceptor
// for its accepted ballot and value without promising anything, and is done
// as soon as ReadQuorum(cfg) acceptors, max(Q1, Q2), report the same accepted
// ballot: that ballot's value is the register's value (see the package doc,
// "Reads with no disk write", for why this is linearizable). When the
// replies cannot reach that agreement (they disagree, acceptors failed,
// too few answered before the caller's timeout) the caller reads through a
// full round instead (Proposer.Begin with a nil ChangeFunc).
//
// Like a Proposal it is a step machine: it does no I/O and reads no clock.
// Promises in the replies do not matter: a higher promise is an attempt in
// flight whose value is not chosen yet, or the read would see it.
type LeanRead struct {
	key    string
	cfg    Config
	need   int
	req    ReadRequest
	voted  map[string]bool
	count  map[Ballot]int
	values map[Ballot][]byte
	heard  int // acceptors that answered, errored replies included
	seen   Ballot
	stat   ReadStatus
	value  []byte
	ballot Ballot
}

// ReadQuorum is how many acceptors must report one accepted ballot for a lean
// read to return its value: max(Q1, Q2). Q2 of them make the value chosen; Q1
// of them meet every accept quorum, so no later value was chosen before the
// read began.
func ReadQuorum(cfg Config) int { return max(cfg.Q1(), cfg.Q2()) }

// NewLeanRead starts a lean read of key among the acceptors of cfg.
func NewLeanRead(cfg Config, key string) *LeanRead {
	return &LeanRead{
		key:    key,
		cfg:    cfg,
		need:   ReadQuorum(cfg),
		req:    ReadRequest{Key: key, Epoch: cfg.Epoch},
		voted:  make(map[string]bool, len(cfg.Acceptors)),
		count:  make(map[Ballot]int, 2),
		values: make(map[Ballot][]byte, 2),
	}
}

// Key returns the key being read.
func (r *LeanRead) Key() string { return r.key }

// Request returns the request to send to every acceptor.
func (r *LeanRead) Request() ReadRequest { return r.req }

// Status returns where the read stands.
func (r *LeanRead) Status() ReadStatus { return r.stat }

// Seen returns the greatest ballot any reply reported, promised or accepted,
// so that a caller falling back to a round can start above it.
func (r *LeanRead) Seen() Ballot { return r.seen }

// OnReadReply feeds one reply. Replies for another key, from unknown
// acceptors and second replies of one acceptor are ignored, and so is every
// reply once the read is no longer pending. A reply with Err counts as an
// answer that agrees with nobody.
func (r *LeanRead) OnReadReply(rep ReadReply) {
	if r.stat != ReadPending || rep.Key != r.key || r.voted[rep.From] || !r.cfg.Has(rep.From) {
		return
	}
	r.voted[rep.From] = true
	r.heard++
	if rep.Err == nil {
		r.seen = maxBallot(r.seen, maxBallot(rep.Promised, rep.Accepted))
		r.count[rep.Accepted]++
		if _, ok := r.values[rep.Accepted]; !ok {
			// Ballots are unique per attempt and an attempt proposes one
			// value, so every reply with this ballot carries this value.
			r.values[rep.Accepted] = rep.Value
		}
		if r.count[rep.Accepted] >= r.need {
			r.stat, r.ballot, r.value = ReadDone, rep.Accepted, r.values[rep.Accepted]
			return
		}
	}
	best := 0
	for _, c := range r.count {
		best = max(best, c)
	}
	if best+len(r.cfg.Acceptors)-r.heard < r.need {
		r.stat = ReadFallback
	}
}

// QuorumHeard reports whether the read is still pending although ReadQuorum
// acceptors answered it: they disagree, and only acceptors that have not
// answered can still make it agree. Those may be paused or cut off, so a
// driver need not wait the whole phase timeout for them: it may give the
// read up (GiveUp) and read through a round, which the acceptors that did
// answer can decide.
func (r *LeanRead) QuorumHeard() bool { return r.stat == ReadPending && r.heard >= r.need }

// GiveUp ends a pending read as a fallback, as when the caller's phase
// timeout passes before enough acceptors agree.
func (r *LeanRead) GiveUp() {
	if r.stat == ReadPending {
		r.stat = ReadFallback
	}
}

// Result returns the value read and the ballot that accepted it (zero for an
// empty register). It is meaningful in ReadDone.
func (r *LeanRead) Result() ([]byte, Ballot) { return r.value, r.ballot }

// Observe fast-forwards the proposer's counter past b, for a caller that
// falls back to a round after a lean read reported b (LeanRead.Seen).
func (p *Proposer) Observe(b Ballot) { p.observe(b) }
