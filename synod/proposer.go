package synod

import (
	"errors"
	"slices"
)

// ChangeFunc computes a register's new value from its current one (nil for an
// empty register). It must be pure: a proposer may run it several times for one
// change, and only the run whose result a quorum accepted takes effect. It must
// not modify or retain current. An error leaves the register unchanged.
type ChangeFunc func(current []byte) ([]byte, error)

// Proposer is the pure state of one proposer: its ID, its ballot counter and its
// one-round-trip cache. It does no I/O, reads no clock and is not safe for
// concurrent use: the caller serializes calls to a Proposer and to the Begin,
// Retry and Complete methods of its Proposals. Other Proposal methods touch only
// the Proposal, so different Proposals may step concurrently.
type Proposer struct {
	id      string
	cfg     Config
	counter uint64
	fast    map[string]fastEntry
	maxFast int
	noFast  bool
}

// fastEntry records that a quorum accepted value and promised next for a key.
type fastEntry struct {
	next  Ballot
	value []byte
}

// ProposerOption configures a Proposer.
type ProposerOption func(*Proposer)

// WithFastPath enables (the default) or disables the one-round-trip path.
func WithFastPath(on bool) ProposerOption { return func(p *Proposer) { p.noFast = !on } }

// WithFastPathEntries bounds how many keys the one-round-trip cache remembers
// (default 100,000). A key evicted from it takes the two-phase round next time.
func WithFastPathEntries(n int) ProposerOption { return func(p *Proposer) { p.maxFast = n } }

// NewProposer returns a Proposer with the given ID (see ProposerID) and
// configuration, which it validates.
func NewProposer(id string, cfg Config, opts ...ProposerOption) (*Proposer, error) {
	if id == "" {
		return nil, errorf(ErrInvalidConfig, "empty proposer ID")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Acceptors = slices.Clone(cfg.Acceptors)
	p := &Proposer{id: id, cfg: cfg, fast: make(map[string]fastEntry), maxFast: 100_000}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// ID returns the proposer's ID.
func (p *Proposer) ID() string { return p.id }

// Config returns the proposer's configuration.
func (p *Proposer) Config() Config { return p.cfg }

// observe fast-forwards the counter past b, so the next ballot beats it.
func (p *Proposer) observe(b Ballot) {
	if b.Counter > p.counter {
		p.counter = b.Counter
	}
}

// reserve returns a fresh ballot.
func (p *Proposer) reserve() Ballot {
	p.counter++
	return Ballot{Counter: p.counter, Proposer: p.id}
}

// Forget drops key's one-round-trip entry, so its next change takes two phases.
func (p *Proposer) Forget(key string) { delete(p.fast, key) }

// Adopt switches the proposer to cfg if cfg is valid and has a newer epoch
// than its own, and reports whether it did. It drops every one-round-trip
// entry (each stands for a prepare quorum of the old configuration) and moves
// the ballot counter up to cfg's floor. Proposals already begun keep their
// configuration until their next attempt.
func (p *Proposer) Adopt(cfg Config) bool {
	if cfg.Epoch <= p.cfg.Epoch || cfg.Validate() != nil {
		return false
	}
	p.cfg = cfg.Clone()
	clear(p.fast)
	if p.counter < cfg.Floor {
		p.counter = cfg.Floor
	}
	return true
}

// Status is where a Proposal stands; it says what the caller does next.
type Status uint8

const (
	// StatusPreparing: broadcast Request().Prepare, feed replies to OnPrepareReply.
	StatusPreparing Status = iota
	// StatusApply: call Apply, which runs the change function.
	StatusApply
	// StatusAccepting: broadcast Request().Accept, feed replies to OnAcceptReply.
	StatusAccepting
	// StatusRefused: a quorum refused this attempt; back off, then Retry or Abandon.
	StatusRefused
	// StatusDone: finished; call Complete on the Proposer, then read Result.
	StatusDone
)

// String implements fmt.Stringer.
func (s Status) String() string {
	return [...]string{"Preparing", "Apply", "Accepting", "Refused", "Done"}[s]
}

// Request is the message an attempt broadcasts to every acceptor: exactly one of
// Prepare and Accept is set.
type Request struct {
	Prepare *PrepareRequest
	Accept  *AcceptRequest
}

// Proposal is one change of one key, across all the attempts it takes. It is a
// step-driven state machine: the caller sends Request() to the acceptors, feeds
// back their replies, runs Apply when asked, and retries or abandons refused or
// timed-out attempts.
//
// A retry must not apply the change twice. Once an accept carrying the change's
// result may have reached an acceptor, another proposer may adopt it, so a retry
// cannot simply run the change function again. A Proposal remembers the ballots
// of its own accepts and, when a later prepare quorum reports the latest value:
//   - if that value is one of its own results, the change is in it exactly once:
//     it commits that value again instead of running the function;
//   - if the value's ballot is below all of its own results (or is one of its
//     write-backs), no result of it can be part of that value: it runs the function;
//   - otherwise the value may or may not contain the change: ErrIndeterminate.
type Proposal struct {
	key  string
	fs   []ChangeFunc // applied in order; none for a read
	cfg  Config
	stat Status

	// The current attempt.
	ballot      Ballot
	next        Ballot
	prepare     PrepareRequest
	accept      AcceptRequest
	voted       votes
	yes, no     int
	failed      int   // acceptors whose storage failed or that were unreachable in this phase
	failure     error // the first storage failure
	unreached   int   // acceptors the phase's request was not delivered to (ErrNotDelivered)
	unreachable error // the first of their errors
	highest     Ballot
	current     []byte
	isResult    bool // the accept carries the change's result
	inAccept    bool // the attempt reached the accept phase
	fromEntry   bool // the attempt began from a one-round-trip entry
	fErr        error
	outs        []Outcome // what each function did in the run the accept carries
	seen        Ballot    // greatest ballot in any refusal
	newer       *Config   // the newest configuration a stale-epoch refusal carried

	// Across attempts.
	attempts   int
	results    []ballotRun // accepts that carried the change's result
	writeBacks []Ballot    // accepts that carried an unchanged value
	// Room for the usual single entry of each, so that a proposal that
	// commits at its first accept allocates neither list.
	resultsBuf    [1]ballotRun
	writeBacksBuf [1]Ballot
	votedBuf      [5]string // room for the votes of up to five acceptors
	cacheable     bool
	committed     bool // a quorum accepted the attempt's value
	value         []byte
	err           error
}

// runResult is one run of a proposal's change functions whose result an
// accept carried: the value, and what each function did.
type runResult struct {
	value []byte
	outs  []Outcome
}

// ballotRun is the run whose result the accept at ballot carried.
type ballotRun struct {
	ballot Ballot
	runResult
}

// result returns the run whose result the accept at b carried, if any.
func (pr *Proposal) result(b Ballot) (runResult, bool) {
	for _, r := range pr.results {
		if r.ballot == b {
			return r.runResult, true
		}
	}
	return runResult{}, false
}

// setResult records the run whose result the accept at b carries.
func (pr *Proposal) setResult(b Ballot, r runResult) {
	for i := range pr.results {
		if pr.results[i].ballot == b {
			pr.results[i].runResult = r
			return
		}
	}
	if pr.results == nil {
		pr.results = pr.resultsBuf[:0]
	}
	pr.results = append(pr.results, ballotRun{b, r})
}

// dropResult forgets the accept at b as a carrier of the change's result.
func (pr *Proposal) dropResult(b Ballot) {
	pr.results = slices.DeleteFunc(pr.results, func(r ballotRun) bool { return r.ballot == b })
}

// isWriteBack reports whether the accept at b carried an unchanged value.
func (pr *Proposal) isWriteBack(b Ballot) bool { return slices.Contains(pr.writeBacks, b) }

// votes lists the acceptors that answered a phase: a few IDs, for which a
// slice is cheaper than a map.
type votes []string

func (v votes) has(id string) bool { return slices.Contains(v, id) }

// Outcome is what one change function of a batch did (see BeginBatch): the
// value it returned, or, if it returned an error, that error and the value it
// was given.
type Outcome struct {
	Value []byte
	Err   error
}

// Begin starts a change of key by f. If the proposer holds a one-round-trip
// entry for key, the Proposal starts at StatusApply with the cached value and
// skips the prepare phase; otherwise it starts at StatusPreparing. A nil f is a
// read: the identity change, which is never applied twice and never
// indeterminate.
func (p *Proposer) Begin(key string, f ChangeFunc) *Proposal {
	if f == nil {
		return p.BeginBatch(key, nil)
	}
	return p.BeginBatch(key, []ChangeFunc{f})
}

// BeginBatch starts one change of key that applies the functions fs in
// order, each to the value the one before it returned, and commits the last
// value once: changes of one key that queued behind each other share one
// round. A function that returns an error is skipped (the next one gets the
// value it was given); if every function errs, the round writes the current
// value back, as Begin does for one function. A nil entry is a read: it
// changes nothing and sees the value at its place in the batch. Outcome
// tells each function's result once the proposal is done. A retry runs the
// functions again only when Begin would run its one function again, so no
// function's result is applied twice, and a batch with no function (or only
// nil ones) is a read, never indeterminate. Begin(key, f) is BeginBatch with
// fs = [f], and with no functions when f is nil.
func (p *Proposer) BeginBatch(key string, fs []ChangeFunc) *Proposal {
	pr := &Proposal{key: key, fs: fs, cfg: p.cfg}
	pr.voted = pr.votedBuf[:0]
	if p.counter < p.cfg.Floor {
		p.counter = p.cfg.Floor
	}
	if e, ok := p.fast[key]; ok && !p.noFast {
		// Claim the entry: its ballot may carry one value only.
		delete(p.fast, key)
		p.observe(e.next)
		pr.attempts = 1
		pr.ballot, pr.next = e.next, p.reserve()
		pr.current = e.value
		pr.fromEntry = true
		pr.stat = StatusApply
		return pr
	}
	pr.start(p)
	return pr
}

// start begins a two-phase attempt with fresh ballots, under the proposer's
// current configuration.
func (pr *Proposal) start(p *Proposer) {
	pr.attempts++
	pr.cfg = p.cfg
	pr.ballot = p.reserve()
	pr.next = p.reserve()
	pr.prepare = PrepareRequest{Key: pr.key, Ballot: pr.ballot, Epoch: pr.cfg.Epoch}
	pr.resetVotes()
	pr.highest, pr.current = Ballot{}, nil
	pr.inAccept = false
	pr.fromEntry = false
	pr.stat = StatusPreparing
}

func (pr *Proposal) resetVotes() {
	clear(pr.voted)
	pr.voted = pr.voted[:0]
	pr.yes, pr.no, pr.failed, pr.failure = 0, 0, 0, nil
	pr.unreached, pr.unreachable = 0, nil
}

// Key returns the key the proposal changes.
func (pr *Proposal) Key() string { return pr.key }

// Status returns where the proposal stands.
func (pr *Proposal) Status() Status { return pr.stat }

// Ballot returns the current attempt's ballot.
func (pr *Proposal) Ballot() Ballot { return pr.ballot }

// Config returns the configuration of the current attempt: send its requests
// to Config().Acceptors.
func (pr *Proposal) Config() Config { return pr.cfg }

// NewerConfig returns the newest configuration that a stale-epoch refusal of
// the current attempt carried, if any. Retry adopts it.
func (pr *Proposal) NewerConfig() (Config, bool) {
	if pr.newer == nil {
		return Config{}, false
	}
	return *pr.newer, true
}

// stale handles a reply error that carries a configuration (a
// *StaleEpochError) and reports whether err was one. Such a reply is a
// refusal: the acceptor neither promised nor accepted, and stored nothing.
// The newest configuration carried is kept for Retry, which adopts it.
func (pr *Proposal) stale(r replyFrom, err error) bool {
	cfg := staleConfig(err)
	if cfg == nil {
		return false
	}
	if cfg.Epoch > pr.cfg.Epoch && (pr.newer == nil || cfg.Epoch > pr.newer.Epoch) {
		c := cfg.Clone()
		pr.newer = &c
	}
	return pr.vote(r.from, r.key, r.ballot, false, Ballot{})
}

// replyFrom identifies a reply for stale.
type replyFrom struct {
	from, key string
	ballot    Ballot
}

// Attempts returns how many attempts the proposal has started.
func (pr *Proposal) Attempts() int { return pr.attempts }

// Request returns the message of the current phase; it is meaningful in
// StatusPreparing and StatusAccepting.
func (pr *Proposal) Request() Request {
	switch pr.stat {
	case StatusPreparing:
		return Request{Prepare: &pr.prepare}
	case StatusAccepting:
		return Request{Accept: &pr.accept}
	}
	return Request{}
}

// vote counts one acceptor's answer to the current phase, once per acceptor. It
// returns false for replies that do not belong to the current phase: stale,
// duplicated or from an unknown acceptor.
func (pr *Proposal) vote(from, key string, b Ballot, ok bool, seen Ballot) bool {
	if !pr.admit(from, key, b) {
		return false
	}
	if ok {
		pr.yes++
	} else {
		pr.no++
		pr.seen = maxBallot(pr.seen, seen)
	}
	return true
}

// admit records that acceptor from answered the current phase, once per
// acceptor; it returns false for replies that do not belong to it.
func (pr *Proposal) admit(from, key string, b Ballot) bool {
	if key != pr.key || b != pr.ballot || pr.voted.has(from) || !pr.cfg.Has(from) {
		return false
	}
	pr.voted = append(pr.voted, from)
	return true
}

// replyFailed counts a reply whose Err says the acceptor's storage failed
// (ErrStorage: the request may or may not have reached its disk) or that the
// request was not delivered (ErrNotDelivered: the acceptor holds nothing of
// it). Other errors are ignored here.
func (pr *Proposal) replyFailed(from, key string, b Ballot, err error) bool {
	storage := errors.Is(err, ErrStorage)
	if !storage && !errors.Is(err, ErrNotDelivered) || !pr.admit(from, key, b) {
		return false
	}
	pr.failed++
	switch {
	case storage && pr.failure == nil:
		pr.failure = err
	case !storage:
		if pr.unreached++; pr.unreachable == nil {
			pr.unreachable = err
		}
	}
	return true
}

// outcome is the state of the current phase's vote with quorum q. A phase
// that refusals alone put out of reach is lost (a conflict: retry with a
// higher ballot). One that storage failures and unreachable acceptors put out
// of reach, counting only the other acceptors, cannot succeed by retrying
// now: outcome reports it as storage. If refusals and such failures together
// put it out of reach while the healthy acceptors could still form a quorum,
// it is lost: a retry can win them over.
func (pr *Proposal) outcome(q int) (v VoteResult, storage bool) {
	n := len(pr.cfg.Acceptors)
	switch v := tally(n, q, pr.yes, pr.no); {
	case v != VotePending:
		return v, false
	case n-pr.failed < q:
		return VoteLost, true
	case n-pr.no-pr.failed < q:
		return VoteLost, false
	}
	return VotePending, false
}

// QuorumHeard reports whether the current phase is still pending although
// as many acceptors as its quorum answered it: split between yes and no (or
// failures), it waits for the acceptors that have not answered, which alone
// can decide it. A driver may give such a phase up, as if it timed out, once
// they have been silent for long enough, and retry with every acceptor.
func (pr *Proposal) QuorumHeard() bool {
	q := pr.cfg.Q1()
	if pr.inAcceptPhase() {
		q = pr.cfg.Q2()
	}
	return (pr.stat == StatusPreparing || pr.stat == StatusAccepting) && pr.yes+pr.no+pr.failed >= q
}

// failStorage ends the proposal because storage failures and unreachable
// acceptors put the quorum of the current phase out of reach. If an accept
// carrying the change's result may have reached an acceptor (a failed store
// may or may not have reached the disk, and other acceptors may have
// accepted), the outcome is indeterminate.
func (pr *Proposal) failStorage(phase string, q int) {
	pr.finish(nil, &storageError{
		phase: phase, n: len(pr.cfg.Acceptors), q: q,
		failed: pr.failed - pr.unreached, cause: pr.failure,
		unreached: pr.unreached, unreachable: pr.unreachable,
		indeterminate: len(pr.results) > 0,
	})
}

// OnPrepareReply feeds one prepare reply. Replies for other attempts or phases
// are ignored. A reply with an Err is neither a promise nor a refusal; if
// storage failures (ErrStorage) and undelivered requests (ErrNotDelivered)
// leave too few acceptors for a prepare quorum, the proposal ends with an
// error matching ErrStorage or ErrUnavailable, whichever were seen (and
// ErrIndeterminate if an earlier attempt's result may have landed).
func (pr *Proposal) OnPrepareReply(r PrepareReply) {
	if pr.stat != StatusPreparing {
		return
	}
	if staleConfig(r.Err) != nil {
		if !pr.stale(replyFrom{r.From, r.Key, r.Ballot}, r.Err) {
			return
		}
	} else if r.Err != nil {
		if !pr.replyFailed(r.From, r.Key, r.Ballot, r.Err) {
			return
		}
	} else {
		if !pr.vote(r.From, r.Key, r.Ballot, r.OK, r.Seen) {
			return
		}
		if r.OK && pr.highest.Less(r.Accepted) {
			pr.highest, pr.current = r.Accepted, r.Value
		}
	}
	switch v, storage := pr.outcome(pr.cfg.Q1()); {
	case storage:
		pr.failStorage("prepare", pr.cfg.Q1())
	case v == VoteLost:
		pr.stat = StatusRefused
	case v == VoteWon:
		pr.stat = StatusApply
	}
}

// Apply decides the value of the accept phase, running the change function if
// it must (see Proposal), and moves to StatusAccepting, or to StatusDone when the
// outcome is indeterminate.
func (pr *Proposal) Apply() {
	if pr.stat != StatusApply {
		return
	}
	pr.isResult, pr.fErr = false, nil
	newValue := pr.current
	switch res, ours := pr.result(pr.highest); {
	case ours && !pr.highest.IsZero():
		newValue, pr.isResult, pr.outs = res.value, true, res.outs
	case pr.isWriteBack(pr.highest):
		newValue, pr.isResult, pr.outs = pr.run()
	case len(pr.results) > 0 && pr.minResult().Less(pr.highest):
		pr.finish(nil, ErrIndeterminate)
		return
	default:
		newValue, pr.isResult, pr.outs = pr.run()
	}
	if len(pr.fs) == 1 {
		pr.fErr = pr.outs[0].Err
	}
	if pr.isResult {
		pr.setResult(pr.ballot, runResult{newValue, pr.outs})
	} else if !pr.isWriteBack(pr.ballot) {
		if pr.writeBacks == nil {
			pr.writeBacks = pr.writeBacksBuf[:0]
		}
		pr.writeBacks = append(pr.writeBacks, pr.ballot)
	}
	pr.accept = AcceptRequest{Key: pr.key, Ballot: pr.ballot, Value: newValue, Next: pr.next, Epoch: pr.cfg.Epoch}
	pr.resetVotes()
	pr.inAccept = true
	pr.stat = StatusAccepting
}

// run applies the change functions in order to the current value, skipping
// those that return an error. Reads, and runs in which every function erred,
// write the current value back unchanged.
func (pr *Proposal) run() (value []byte, isResult bool, outs []Outcome) {
	value = pr.current
	outs = make([]Outcome, len(pr.fs))
	for i, f := range pr.fs {
		if f == nil {
			outs[i].Value = value
			continue
		}
		v, err := f(value)
		if err != nil {
			outs[i] = Outcome{Value: value, Err: err}
			continue
		}
		value, isResult = v, true
		outs[i].Value = v
	}
	return value, isResult, outs
}

func (pr *Proposal) minResult() Ballot {
	var m Ballot
	for _, r := range pr.results {
		if m.IsZero() || r.ballot.Less(m) {
			m = r.ballot
		}
	}
	return m
}

// OnAcceptReply feeds one accept reply. Replies for other attempts or phases
// are ignored. After a refusal, late replies to the refused accept still count
// (see Unsettled): if every acceptor refused it, the result it carried is
// nowhere and cannot make a later attempt indeterminate.
//
// A reply with an Err is neither an acceptance nor a refusal: a failed store
// may or may not have reached the disk, an undelivered request
// (ErrNotDelivered) did not. If storage failures and undelivered requests
// leave too few acceptors for an accept quorum, the proposal ends at once with
// an error matching ErrStorage or ErrUnavailable, whichever were seen, and
// also ErrIndeterminate when the accept (or an earlier one) carried the
// change's result and may have reached an acceptor; a write-back of an
// unchanged value ends without ErrIndeterminate, since the change was not
// applied. An accept every acceptor refused or never got is nowhere.
func (pr *Proposal) OnAcceptReply(r AcceptReply) {
	refused := pr.stat == StatusRefused && pr.inAccept
	if pr.stat != StatusAccepting && !refused {
		return
	}
	switch {
	case r.Err == nil:
		if !pr.vote(r.From, r.Key, r.Ballot, r.OK, r.Seen) {
			return
		}
	case staleConfig(r.Err) != nil:
		if !pr.stale(replyFrom{r.From, r.Key, r.Ballot}, r.Err) {
			return
		}
	default:
		if !pr.replyFailed(r.From, r.Key, r.Ballot, r.Err) {
			return
		}
	}
	if pr.no+pr.unreached == len(pr.cfg.Acceptors) {
		pr.dropResult(pr.ballot)
	}
	if refused {
		return
	}
	switch v, storage := pr.outcome(pr.cfg.Q2()); {
	case storage && pr.mayBeNowhere():
		// Wait for the other replies: if they too say the accept is not
		// there, the change was not applied.
	case storage:
		pr.failStorage("accept", pr.cfg.Q2())
	case v == VoteLost:
		pr.stat = StatusRefused
	case v == VoteWon:
		// The entry is a virtual prepare quorum for next, so it needs Q1 promises.
		pr.cacheable = pr.yes >= pr.cfg.Q1()
		pr.committed = true
		pr.finish(pr.accept.Value, pr.fErr)
	}
}

// mayBeNowhere reports whether the accept carries the change's result, every
// acceptor that answered refused it or never got it, and some have not
// answered yet: their replies may still show that the result is nowhere.
func (pr *Proposal) mayBeNowhere() bool {
	_, pending := pr.result(pr.ballot)
	return pending && pr.yes == 0 && pr.failed == pr.unreached && pr.no+pr.unreached < len(pr.cfg.Acceptors)
}

// Unsettled reports whether the attempt's accept was refused while carrying the
// change's result and not every acceptor has answered yet: a caller that waits
// for the remaining replies (during its backoff, say) may learn that every
// acceptor refused, which keeps a retry determinate.
func (pr *Proposal) Unsettled() bool {
	_, pending := pr.result(pr.ballot)
	return pr.stat == StatusRefused && pr.inAccept && pending && pr.yes+pr.no+pr.failed < len(pr.cfg.Acceptors)
}

func (pr *Proposal) finish(v []byte, err error) {
	pr.value, pr.err, pr.stat = v, err, StatusDone
}

// Retry starts a new two-phase attempt after a refusal or a timeout, with a
// ballot above every ballot the acceptors reported, under the newer
// configuration a stale-epoch refusal carried if there was one (the proposer
// adopts it). It does nothing once the proposal is done.
//
// The new ballot leapfrogs the greatest one reported by more the longer the
// proposal has been retrying: one past it on the first retry, then 2, 4, ...
// up to 65536 past it. A competitor on the one-round-trip path takes a new
// ballot with each change, so by the time a retry's prepare arrives (a
// backoff and a round trip later) the ballot the refusal reported has moved
// on, and a retry only one past it would be refused again for as long as the
// competitor keeps changing the key: a rescan beside a busy writer, or a
// failed-over actor beside its old activation, would starve. Ballots need
// only be unique and grow, so a jump costs nothing.
func (pr *Proposal) Retry(p *Proposer) {
	if pr.stat == StatusDone {
		return
	}
	if pr.newer != nil {
		p.Adopt(*pr.newer)
		pr.newer = nil
	}
	p.observe(leapfrog(pr.seen, pr.attempts))
	pr.start(p)
}

// leapfrog returns the ballot to observe before the retry that follows
// attempt (counted from 1) was refused by seen: see Retry.
func leapfrog(seen Ballot, attempt int) Ballot {
	if seen.Counter == 0 {
		return seen
	}
	jump := uint64(1) << min(max(attempt-1, 0), 16)
	if seen.Counter > ^uint64(0)-jump {
		return seen
	}
	return Ballot{Counter: seen.Counter + jump - 1, Proposer: seen.Proposer}
}

// Unsendable ends the proposal because its current request is invalid (a
// value over the transport's limit, say) and reached no acceptor. A value that
// reached nobody cannot take effect, so the proposal ends with err, unless an
// earlier attempt's result may have landed, in which case it is
// ErrIndeterminate.
func (pr *Proposal) Unsendable(err error) {
	if pr.stat == StatusDone {
		return
	}
	pr.dropResult(pr.ballot)
	if len(pr.results) > 0 {
		pr.finish(nil, ErrIndeterminate)
		return
	}
	pr.finish(nil, err)
}

// Abandon ends the proposal unfinished, as when its deadline passes, and returns
// its error: ErrIndeterminate if an accept carrying the change's result may have
// reached an acceptor, otherwise a *ConflictError if the last attempt was refused,
// otherwise ErrUnavailable.
func (pr *Proposal) Abandon() error {
	if pr.stat == StatusDone {
		return pr.err
	}
	switch {
	case len(pr.results) > 0:
		pr.finish(nil, ErrIndeterminate)
	case pr.stat == StatusRefused:
		pr.finish(nil, &ConflictError{Key: pr.key, Proposed: pr.ballot, Existing: pr.seen})
	default:
		pr.finish(nil, ErrUnavailable)
	}
	return pr.err
}

// Complete records a finished proposal in the proposer: it fast-forwards past
// refused ballots and, after a commit, caches the one-round-trip entry.
func (p *Proposer) Complete(pr *Proposal) {
	p.observe(pr.seen)
	if pr.newer != nil {
		p.Adopt(*pr.newer)
	}
	if pr.stat != StatusDone || errors.Is(pr.err, ErrIndeterminate) || !pr.cacheable || p.noFast || pr.cfg.Epoch != p.cfg.Epoch {
		return
	}
	if _, ok := p.fast[pr.key]; !ok && len(p.fast) >= p.maxFast {
		for k := range p.fast {
			delete(p.fast, k)
			break
		}
	}
	p.fast[pr.key] = fastEntry{next: pr.next, value: pr.value}
}

// Outcome returns what the i-th function given to BeginBatch did in the run
// whose value was committed: the value it returned, or the value it was given
// and its error. If the proposal failed (ErrIndeterminate, a conflict, ...)
// every function's outcome is that failure: nil and the proposal's error. A
// read (no functions) has one outcome, the value. Meaningful in StatusDone.
func (pr *Proposal) Outcome(i int) ([]byte, error) {
	if !pr.committed {
		return nil, pr.err
	}
	if len(pr.outs) == 0 {
		return pr.value, nil
	}
	o := pr.outs[i]
	return o.Value, o.Err
}

// Result returns the committed value and the change function's error, or the
// proposal's error. It is meaningful in StatusDone. After a change function
// error the value is the unchanged current value. For a batch of several
// functions (see BeginBatch) the error is only the proposal's: each
// function's own result is its Outcome.
func (pr *Proposal) Result() ([]byte, error) { return pr.value, pr.err }
