package synod

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ThriftySize is how many acceptors of cfg a thrifty phase first sends its
// request to: a prepare goes to Q1 of them, an accept to Q2, the fewest that
// can win the phase.
//
// An accept whose success makes a one-round-trip entry needs Q1 yes votes
// (the entry stands for a prepare quorum of its Next ballot), which would
// call for max(Q1, Q2). But a Proposal decides its accept phase at the Q2-th
// yes and keeps the entry only if that many reach Q1, so it keeps one only
// when Q1 <= Q2, and then max(Q1, Q2) = Q2.
func ThriftySize(cfg Config, accept bool) int {
	if accept {
		return cfg.Q2()
	}
	return cfg.Q1()
}

// ThriftySplit splits cfg's acceptors for a thrifty phase: first are the
// ThriftySize(cfg, accept) acceptors to send the phase's request to at once,
// rest the others, which get it only if the phase needs them (a hedge).
// The choice depends on spread alone (the acceptor list rotated by a hash of
// spread) except that acceptors for which suspect reports true go to rest
// while enough others remain. suspect may be nil. Both slices come from cfg's
// acceptors only: a phase never mixes configurations.
//
// A Client passes its proposer ID as spread, so all its phases go to one
// subset; see WithThrifty for why. Safety does not depend on the choice.
func ThriftySplit(cfg Config, spread string, accept bool, suspect func(id string) bool) (first, rest []string) {
	return ThriftySplitNear(cfg, spread, nil, accept, suspect)
}

// ThriftySplitNear is ThriftySplit with the acceptors in tiers of distance
// (see Nearness), the nearest tier first: the order is each tier's
// acceptors in spread's rotation, then the others in that rotation, so a
// subset takes the nearest acceptors it has room for and, within a tier,
// those spread picks. Acceptors that cfg does not hold, or that an earlier
// tier names, are ignored. With no tiers, or one holding every acceptor of
// cfg, it is ThriftySplit.
func ThriftySplitNear(cfg Config, spread string, near [][]string, accept bool, suspect func(id string) bool) (first, rest []string) {
	acc := cfg.Acceptors
	n := len(acc)
	size := ThriftySize(cfg, accept)
	if size >= n {
		return acc, nil
	}
	order := thriftyOrder(acc, spread, near)
	out := make([]string, 0, n)
	var skipped []string
	for _, id := range order {
		if len(out) < size && (suspect == nil || !suspect(id)) {
			out = append(out, id)
		} else {
			skipped = append(skipped, id)
		}
	}
	// Too few unsuspected acceptors: the first suspects fill the subset.
	for len(out) < size {
		out, skipped = append(out, skipped[0]), skipped[1:]
	}
	out = append(out, skipped...)
	return out[:size:size], out[size:]
}

// thriftyOrder returns acc rotated by a hash of spread, with the acceptors
// of each tier of near moved ahead of the rest, the nearest tier first, each
// part in the rotation's order. It returns a new slice.
func thriftyOrder(acc []string, spread string, near [][]string) []string {
	n := len(acc)
	start := keySlot(spread, n)
	rotated := append(append(make([]string, 0, n), acc[start:]...), acc[:start]...)
	if len(near) == 0 {
		return rotated
	}
	out := make([]string, 0, n)
	for _, tier := range near {
		for _, id := range rotated {
			if slices.Contains(tier, id) && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	for _, id := range rotated {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// keySlot hashes s (FNV-1a) to one of n slots, without allocating.
func keySlot(s string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// Hedge delays: see WithHedgeDelay.
const (
	hedgeFloor        = 2 * time.Millisecond
	hedgeInitial      = 20 * time.Millisecond
	defaultSuspectFor = time.Second
)

// thrifty is a Client's state for thrifty phases (see WithThrifty): the
// smoothed latency of replies to thrifty phases, the acceptors it suspects,
// and the subsets of its configuration.
type thrifty struct {
	fixed      time.Duration // WithHedgeDelay; 0: adaptive
	ceiling    time.Duration
	suspectFor time.Duration
	now        func() time.Time

	// Smoothed latency and mean deviation (RFC 6298's estimator), in
	// nanoseconds; 0 before the first sample. Updates that race may lose
	// one sample, which an estimate can afford.
	srtt, rttvar atomic.Int64

	suspected atomic.Int32 // len(suspects), read without mu on every phase
	mu        sync.Mutex
	suspects  map[string]time.Time // acceptor -> when it is tried again
	order     atomic.Pointer[order]
}

// order caches the client's order of one acceptor list (ThriftySplitNear's
// order for spread and near with no suspects), so that such a phase splits
// without allocating or hashing.
type order struct {
	acceptors []string
	spread    string
	near      [][]string
	rotated   []string
}

func newThrifty(o clientOptions) *thrifty {
	now := o.now
	if now == nil {
		now = time.Now
	}
	return &thrifty{
		fixed:      o.hedgeDelay,
		ceiling:    o.phaseTimeout / 4,
		suspectFor: o.suspectFor,
		now:        now,
		suspects:   make(map[string]time.Time),
	}
}

// split is ThriftySplitNear of spread (the client's proposer ID) and near
// (its Transport's tiers, see Nearness) with the client's suspects, from the
// cache when there are none.
func (t *thrifty) split(cfg Config, spread string, near [][]string, accept bool) (first, rest []string) {
	acc := cfg.Acceptors
	size := ThriftySize(cfg, accept)
	if size >= len(acc) {
		return acc, nil
	}
	if t.suspected.Load() > 0 {
		t.mu.Lock()
		defer t.mu.Unlock()
		now := t.now()
		return ThriftySplitNear(cfg, spread, near, accept, func(id string) bool { return t.suspectLocked(id, now) })
	}
	o := t.order.Load()
	if o == nil || o.spread != spread || !slices.Equal(o.acceptors, acc) || !slices.EqualFunc(o.near, near, slices.Equal[[]string]) {
		o = &order{acceptors: acc, spread: spread, near: near, rotated: thriftyOrder(acc, spread, near)}
		t.order.Store(o)
	}
	s := o.rotated
	return s[:size:size], s[size:]
}

// suspectLocked reports whether id is suspected at now, forgetting the
// suspicion once its time is up. t.mu is held.
func (t *thrifty) suspectLocked(id string, now time.Time) bool {
	until, ok := t.suspects[id]
	if !ok {
		return false
	}
	if now.Before(until) {
		return true
	}
	delete(t.suspects, id)
	t.suspected.Add(-1)
	return false
}

// suspect makes the next phases avoid id for a while.
func (t *thrifty) suspect(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.suspects[id]; !ok {
		t.suspected.Add(1)
	}
	t.suspects[id] = t.now().Add(t.suspectFor)
}

// suspectSilent suspects the acceptors of first that have not answered
// pr's phase, if it hedged on the delay (delayed): still silent a round
// trip after the hedge, they are paused or gone rather than merely slow.
// Suspecting at the hedge itself would also catch acceptors that are only
// slower than the delay, which under load is often, and move the keys'
// subsets around for nothing.
func (t *thrifty) suspectSilent(pr *Proposal, first []string, delayed bool) {
	if !delayed {
		return
	}
	for _, id := range first {
		if !pr.voted.has(id) {
			t.suspect(id)
		}
	}
}

// delay is how long a phase waits for its subset before it hedges: four
// times the smoothed reply latency plus four mean deviations (TCP's
// retransmission timeout, times four: under load phase latencies have
// long tails, and a hedge that fires early spends the request it was to
// save), at least 2ms and at most a quarter of the phase timeout.
func (t *thrifty) delay() time.Duration {
	if t.fixed > 0 {
		return t.fixed
	}
	d := hedgeInitial
	if s := t.srtt.Load(); s > 0 {
		d = time.Duration(4 * (s + 4*t.rttvar.Load()))
	}
	return min(max(d, hedgeFloor), t.ceiling)
}

// observe feeds the latency of one reply to a thrifty phase, from when its
// request was sent. Only replies count: a paused or cut-off acceptor sends
// none, so it cannot inflate the estimate, while acceptors that all became
// slower (a slower network, say) raise it with their replies, hedged or
// not. (Counting only phases that won without a hedge, as this did first,
// left the estimate stuck once every phase hedged.)
func (t *thrifty) observe(d time.Duration) {
	x := int64(d)
	s := t.srtt.Load()
	if s == 0 {
		t.srtt.Store(max(x, 1))
		t.rttvar.Store(x / 2)
		return
	}
	dev := s - x
	if dev < 0 {
		dev = -dev
	}
	t.rttvar.Store(t.rttvar.Load() + (dev-t.rttvar.Load())/4)
	t.srtt.Store(max(s+(x-s)/8, 1))
}

// OneRoundTrip reports whether the current attempt began from a
// one-round-trip entry: it skipped the prepare phase, so its accept is its
// only phase. Such an accept is the only phase a thrifty Client sends to a
// subset (see WithThrifty): the entry means that no other proposer has
// written the key since this one did, so the phase is most likely
// uncontended.
func (pr *Proposal) OneRoundTrip() bool { return pr.fromEntry }

// MayBeNowhere reports whether the current accept carries the change's
// result and every acceptor that answered so far refused it or never got
// it, while others have not answered: the result may still turn out to be
// nowhere, which keeps a retry determinate (see Unsettled). A thrifty driver
// (see Withhold) does not hedge such an accept on a refusal: an acceptor
// outside its subset, which never saw the competing ballot, would accept it
// and put the result somewhere without winning.
func (pr *Proposal) MayBeNowhere() bool {
	return pr.inAcceptPhase() && pr.mayBeNowhere()
}

// inAcceptPhase reports whether the current phase is an accept, pending or
// refused: replies to a refused accept still count (see OnAcceptReply).
func (pr *Proposal) inAcceptPhase() bool {
	return pr.stat == StatusAccepting || pr.stat == StatusRefused && pr.inAccept
}

// Withhold tells pr that the current accept (pending, or refused already)
// was not sent to the acceptors
// ids and never will be, so they hold nothing of it and will never vote,
// once that settles the phase: when the accept carries the change's result,
// no acceptor accepted it or failed to store it, and every acceptor outside
// ids has answered (refused, or never got it). They then count as refusals,
// so the phase is lost and its result nowhere (a retry stays determinate),
// or, if too few acceptors were reachable, it fails as OnAcceptReply would.
// It reports whether it did; otherwise it changes nothing.
//
// The caller must be sure that none of ids got the request, not even
// through a hedge already sent: an acceptor that did may accept it, and
// counting it as holding nothing would let a retry apply the change twice.
func (pr *Proposal) Withhold(ids []string) bool {
	if !pr.MayBeNowhere() {
		return false
	}
	withheld := 0
	for _, id := range ids {
		if pr.cfg.Has(id) && !pr.voted.has(id) {
			withheld++
		}
	}
	if pr.yes+pr.no+pr.failed+withheld != len(pr.cfg.Acceptors) {
		return false // some acceptor that got it has not answered
	}
	for _, id := range ids {
		if pr.cfg.Has(id) && !pr.voted.has(id) {
			pr.voted = append(pr.voted, id)
			pr.no++
		}
	}
	if pr.no+pr.unreached == len(pr.cfg.Acceptors) {
		pr.dropResult(pr.ballot)
	}
	if pr.stat != StatusAccepting {
		return true // refused already
	}
	switch v, storage := pr.outcome(pr.cfg.Q2()); {
	case storage:
		pr.failStorage("accept", pr.cfg.Q2())
	case v == VoteLost:
		pr.stat = StatusRefused
	}
	return true
}
