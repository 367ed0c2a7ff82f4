package synodtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/protosynod/protosynod/synod"
)

// Fault is a deliberate safety bug that a simulation can inject into its
// acceptors, to show that the checker catches a broken protocol. It exists only
// in this test package; production acceptors have no such switch.
type Fault uint8

const (
	// FaultNone runs the real rules.
	FaultNone Fault = iota
	// FaultForgetPromise makes a restarted acceptor forget its promises: its
	// Promised ballot falls back to its Accepted ballot.
	FaultForgetPromise
	// FaultAmnesia makes a crashed acceptor lose everything it stored, as if
	// it had replied before its writes were durable.
	FaultAmnesia
	// FaultNoBallotCheck makes acceptors accept every accept request without
	// checking its ballot against their promise.
	FaultNoBallotCheck
	// FaultLeanReadFewer makes lean reads answer when one fewer than
	// max(Q1, Q2) acceptors report the same accepted ballot.
	FaultLeanReadFewer
	// FaultLeanReadMismatch makes lean reads ignore a mismatch: once
	// max(Q1, Q2) acceptors answered, they return the value of the highest
	// accepted ballot among the replies, whether or not the others agree.
	FaultLeanReadMismatch
	// FaultNoRescan makes the operator skip the rescan after each
	// membership step, so values chosen under the old configuration need not
	// be held by an accept quorum of the new one.
	FaultNoRescan
	// FaultRescanBeforeFence makes the operator rescan before it installs a
	// step's configuration, so stale proposers can still choose values under
	// the old one after their key was rescanned.
	FaultRescanBeforeFence
	// FaultGCNoFence makes garbage collection remove deleted registers
	// without first fencing older epochs and raising the ballot floor.
	FaultGCNoFence
	// FaultBatchFinalValue gives every caller of a batched round the
	// batch's final value instead of the value its own change returned.
	FaultBatchFinalValue
	// FaultBatchLastOnly makes a batched round commit only its last change,
	// applied to the value the batch began from, while the earlier callers
	// still get the values their changes returned.
	FaultBatchLastOnly
	// FaultFalseNotDelivered makes the network (with NoResponders) answer
	// half of the requests it does deliver to an acceptor with
	// synod.ErrNotDelivered instead of the acceptor's reply: a transport that
	// reports "no responders" for a request that arrived.
	FaultFalseNotDelivered
	// FaultCacheFailedStore puts a broken state cache in front of every
	// acceptor's storage (in place of the Acceptor's own, see
	// synod.WithStateCache): it keeps the state of a Store even when the
	// Store failed, and serves it until the acceptor restarts. Needs
	// StoreFaults.
	FaultCacheFailedStore
	// FaultCacheStale puts a broken state cache in front of every
	// acceptor's storage: it keeps the state a key had when it was first
	// loaded and misses the acceptor's later Stores, so the acceptor builds
	// on a stale state.
	FaultCacheStale
	// FaultWithholdHedged makes thrifty proposers (with Thrifty) withhold
	// a refused accept from the acceptors outside its subset
	// (synod.Proposal.Withhold) even after the hedge delay sent it to them:
	// a proposal that counts acceptors that may have accepted as holding
	// nothing.
	FaultWithholdHedged
	// FaultLostAsYes makes proposers (with LostReplies) take a reply whose
	// request or reply was lost for a yes: a promise from an acceptor that
	// may hold an accepted value, an accept that may not have happened.
	FaultLostAsYes
)

// String implements fmt.Stringer.
func (f Fault) String() string {
	return [...]string{"none", "forget-promise", "amnesia", "no-ballot-check", "lean-read-fewer", "lean-read-mismatch",
		"no-rescan", "rescan-before-fence", "gc-no-fence", "batch-final-value", "batch-last-only",
		"false-not-delivered", "cache-failed-store", "cache-stale", "withhold-hedged", "lost-as-yes"}[f]
}

// SimConfig describes one simulated run. Zero fields take the defaults noted.
type SimConfig struct {
	Seed uint64

	Acceptors     int // default 3
	PrepareQuorum int // default majority
	AcceptQuorum  int // default majority
	Proposers     int // default 3
	Keys          int // default 2
	Ops           int // operations per caller, default 10
	// Callers is how many callers share each proposer, as goroutines share
	// a synod.Client (default 1): their calls queue behind the proposer's
	// round in flight, and the next round runs the queued calls of one key
	// together (change batching), unless NoBatching.
	Callers    int
	NoBatching bool
	TwoPhase   bool
	// LeanReads makes reads try synod.LeanRead first (no disk write) and
	// fall back to a round, as synod.Client.Read does.
	LeanReads bool
	// ExactlyOnce gives every change an ID recorded in the register (package
	// dedup) and retries a change that ended indeterminate with the same ID
	// until its deadline, as dedup.Client does.
	ExactlyOnce bool

	// Network faults. Drop and Duplicate are per-message probabilities;
	// DuplicateRequests also lets requests (not only replies) arrive twice,
	// which goes beyond what synod asks of a Transport (see the package doc of
	// synod, duty 7) to exercise the acceptors' handling of duplicates.
	Drop              float64
	Duplicate         float64
	DuplicateRequests bool
	MaxDelay          int64 // a message takes 1..MaxDelay steps, default 8
	// NoResponders makes a request that reaches a crashed or removed
	// acceptor come back at once as a reply whose Err is
	// synod.ErrNotDelivered, as NATS answers "no responders" for a subject
	// nobody serves (instead of being lost, which makes the proposer wait for
	// its phase timeout). Not with DuplicateRequests: a second copy of the
	// request could still arrive later, which that answer rules out.
	NoResponders bool
	// LostReplies makes every request or reply the network drops (Drop)
	// come back to its proposer as a reply whose Err is synod.ErrReplyLost,
	// as natstransport answers the frames in flight when its connection to
	// NATS drops: the request may have taken effect, but no reply will
	// come. The proposer gives a phase up at once once every acceptor it
	// asked has answered, with votes or such replies, undecided.
	LostReplies bool

	// StateCache is the size in bytes of each acceptor's state cache (see
	// synod.WithStateCache): 0 means synod.DefaultStateCache, a negative
	// size none. A few hundred bytes hold one or two registers, so the
	// caches evict.
	StateCache int64
	// StoreFaults is the probability that a register Load or Store of an
	// acceptor fails with an error matching synod.ErrStorage (never in the
	// final phase, nor for the operator's requests and rounds). A failed Store leaves
	// the old state or, one time in three, stores the new one anyway: the
	// caller cannot tell, as the synod.Storage contract says.
	StoreFaults float64

	// Timeouts in logical steps: a phase without a quorum after PhaseTimeout is
	// retried, an operation still running after OpTimeout is abandoned.
	PhaseTimeout int64 // default 3*MaxDelay
	OpTimeout    int64 // default 12*PhaseTimeout

	// Chaos: every ChaosEvery steps an up acceptor crashes with probability
	// Crash, to restart within 1..Downtime steps, and a partition starts with
	// probability Partition.
	ChaosEvery int64 // default 2*MaxDelay
	Crash      float64
	Downtime   int64 // default 5*PhaseTimeout
	Partition  float64
	// ProposerCrash is the probability per chaos tick that a proposer crashes
	// and restarts at once as a new process (a fresh ID nonce, counter and
	// cache), abandoning its operation in flight.
	ProposerCrash float64

	// Thrifty makes proposers send each phase first to a quorum-sized
	// subset of the acceptors (synod.ThriftySplit) and hedge to the others
	// as synod.Client does with WithThrifty: on a reply that is not a yes
	// (an accept whose result may be nowhere waits for its whole subset and
	// is withheld from the others if all refuse), or once HedgeDelay steps
	// passed (default MaxDelay). Acceptors of the subset still silent when
	// such a phase ends, or that answered with an error, are left out of
	// the proposer's subsets for SuspectFor steps (default 2*PhaseTimeout).
	// A phase after one that timed out goes to every acceptor. As with
	// synod.Client, only one-round-trip accepts go to a subset, the
	// proposer's (ThriftySplitNear of its ID and its tiers of near
	// acceptors of the first configuration, drawn from the seed, as a
	// Transport's Nearness would report them); with ThriftyByKey every phase
	// does, to the key's subset (the Client's rule before).
	Thrifty      bool
	HedgeDelay   int64
	SuspectFor   int64
	ThriftyByKey bool

	// Membership and deletion: Deletes lets proposers delete registers (write
	// the empty value); Operations is how many operator actions (add, remove
	// or replace an acceptor, collect garbage) run during the load, drawn
	// from the seed.
	Deletes    bool
	Operations int
	GCOnly     bool // every operator action is a garbage collection

	Fault Fault
	Trace io.Writer // every event, when not nil
}

// RandomSimConfig returns a configuration for seed whose shape (cluster size,
// quorums, load, fault rates, fast path) is itself drawn from the seed.
func RandomSimConfig(seed uint64) SimConfig {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	c := SimConfig{Seed: seed, Acceptors: 3}
	if r.IntN(4) == 0 {
		c.Acceptors = 5
	}
	if r.IntN(6) == 0 { // flexible quorums
		if c.Acceptors == 3 {
			c.PrepareQuorum, c.AcceptQuorum = 3, 1
		} else {
			c.PrepareQuorum, c.AcceptQuorum = 4, 2
		}
	}
	c.Proposers = 2 + r.IntN(3)
	c.Keys = 1 + r.IntN(3)
	c.Ops = 6 + r.IntN(10)
	c.TwoPhase = r.IntN(5) == 0
	c.Drop = []float64{0, 0.02, 0.1, 0.25}[r.IntN(4)]
	c.Duplicate = []float64{0, 0.05, 0.2}[r.IntN(3)]
	c.MaxDelay = 1 + r.Int64N(10)
	c.Crash = []float64{0, 0.05, 0.2}[r.IntN(3)]
	c.Partition = []float64{0, 0.05, 0.2}[r.IntN(3)]
	c.ProposerCrash = []float64{0, 0, 0.02, 0.1}[r.IntN(4)]
	c.LeanReads = r.IntN(4) != 0
	c.Deletes = r.IntN(2) == 0
	if c.PrepareQuorum == 0 && r.IntN(3) != 0 { // membership steps need majority quorums
		c.Operations = 1 + r.IntN(4)
	}
	// Drawn last, so the shapes drawn above stay those of earlier versions.
	if r.IntN(3) != 0 { // several callers per proposer: batched rounds
		c.Callers = 2 + r.IntN(4)
		c.Ops = 3 + r.IntN(6)
	}
	c.NoResponders = r.IntN(2) == 0
	c.StateCache = []int64{0, 0, -1, 300, 600}[r.IntN(5)]
	c.StoreFaults = []float64{0, 0, 0.02, 0.1}[r.IntN(4)]
	if c.Thrifty = r.IntN(2) == 0; c.Thrifty {
		c.HedgeDelay = 1 + r.Int64N(2*c.MaxDelay)
	}
	c.LostReplies = r.IntN(3) == 0 && c.Drop > 0
	c.ThriftyByKey = c.Thrifty && r.IntN(2) == 0
	return c
}

func (c *SimConfig) defaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def64 := func(p *int64, v int64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Acceptors, 3)
	def(&c.Proposers, 3)
	def(&c.Keys, 2)
	def(&c.Ops, 10)
	def(&c.Callers, 1)
	def64(&c.MaxDelay, 8)
	def64(&c.PhaseTimeout, 3*c.MaxDelay)
	def64(&c.OpTimeout, 12*c.PhaseTimeout)
	def64(&c.ChaosEvery, 2*c.MaxDelay)
	def64(&c.Downtime, 5*c.PhaseTimeout)
	def64(&c.HedgeDelay, c.MaxDelay)
	def64(&c.SuspectFor, 2*c.PhaseTimeout)
}

// SimResult is what one simulated run did and found.
type SimResult struct {
	Config  SimConfig // with defaults filled in
	Steps   int64     // logical time at the end
	Events  int
	History []porcupine.Operation

	Reconfigurations int // membership steps completed (one acceptor added or removed each)
	Collections      int // garbage collections completed
	Collected        int // register states removed from acceptors' storage
	Deleted          int // deletions acknowledged

	Committed       int // operations that returned a result, final reads included
	LeanReads       int // reads answered with no disk write
	LeanFallbacks   int // lean reads that fell back to a round
	Indeterminate   int // operations that returned ErrIndeterminate
	Changes         int // operations other than reads, whatever their outcome
	Batches         int // rounds that carried more than one call
	Batched         int // calls in those rounds
	Dropped         int // calls whose deadline passed while they queued (never run)
	Replayed        int // exactly-once retries that found their change applied
	Retried         int // exactly-once retries after an indeterminate attempt
	NotApplied      int // operations that returned ErrConflict or ErrUnavailable
	Pruned          int // indeterminate operations never observed (see PruneUnobserved)
	TimedOut        int // operations abandoned at their deadline, whatever their outcome
	ProposerCrashes int
	NotDelivered    int // requests answered "not delivered" (NoResponders)
	ThriftyPhases   int // phases sent first to a subset (Thrifty)
	Hedges          int // of those, hedged on a reply that was not a yes
	DelayHedges     int // of those, hedged once HedgeDelay passed
	Withheld        int // of those, refused accepts withheld from the others
	Stalls          int // phases given up after a quorum answered undecided (the stall wait)
	ReadStalls      int // lean reads given up after a quorum answered without agreeing
	LostReplies     int // replies whose Err is synod.ErrReplyLost (LostReplies)
	AllAnswered     int // phases given up at once: every acceptor asked answered, undecided

	// Check is porcupine's verdict on History against RegisterModel.
	Check porcupine.CheckResult
	// Violations lists every invariant broken during the run: an acknowledged
	// value held by too few acceptors, an unexpected error, a final read that
	// failed. Empty for a correct run.
	Violations []string
}

// OK reports whether the run found no problem.
func (r *SimResult) OK() bool { return r.Check == porcupine.Ok && len(r.Violations) == 0 }

// String summarizes the run.
func (r *SimResult) String() string {
	return fmt.Sprintf("seed %d: %d steps, %d events, %d ops in history (%d committed, %d indeterminate of which %d never observed), %d not applied, %d deleted, %d membership steps, %d collections removing %d states: %s, %d violations",
		r.Config.Seed, r.Steps, r.Events, len(r.History), r.Committed, r.Indeterminate, r.Pruned, r.NotApplied,
		r.Deleted, r.Reconfigurations, r.Collections, r.Collected, r.Check, len(r.Violations))
}

// errCASMismatch is the change function error of a compare-and-set that found
// another value.
var errCASMismatch = errors.New("synodtest: cas: value mismatch")

// RunSim runs one deterministic simulation: cfg.Proposers proposers, each a
// production synod.Proposer driven step by step, run cfg.Ops reads, writes,
// compare-and-sets and appends on cfg.Keys keys against cfg.Acceptors
// production synod.Acceptors on MemoryStorages, over a network that drops,
// duplicates, delays and reorders messages, while acceptors crash and restart
// and partitions come and go. There are no goroutines and no clock: one seeded
// scheduler orders every event, so a seed always gives the same trace.
//
// After every step it checks that each acknowledged commit is still held by
// enough acceptors that every prepare quorum sees it. At the end it heals the
// network, reads every key, and checks the whole history with porcupine
// against RegisterModel (checkTimeout bounds that check; zero means none).
func RunSim(cfg SimConfig, checkTimeout time.Duration) *SimResult {
	cfg.defaults()
	s := newSim(cfg)
	s.run()
	res := s.res
	res.Config = cfg
	res.Steps = s.now
	checked := PruneUnobserved(res.History)
	res.Pruned = len(res.History) - len(checked)
	res.Check = porcupine.CheckOperationsTimeout(RegisterModel(), checked, checkTimeout)
	return res
}

type sim struct {
	cfg    SimConfig
	rng    *rand.Rand
	synCfg synod.Config
	now    int64
	seq    uint64
	q      eventQueue
	accs   []*simAcceptor
	idx    map[string]int // acceptor ID -> index in accs
	props  []*simProposer
	op     *simOperator // nil without operations
	cut    [][]bool     // [proposer][acceptor]
	acked  map[string]synod.Ballot
	// collectedFloor is, per key, the highest ballot floor under which a
	// garbage collection removed its tombstone.
	collectedFloor map[string]uint64
	keys           []string
	running        int // callers with operations left, and the operator
	final          bool
	admin          bool // an operator's request or round is being served
	res            *SimResult
}

type simAcceptor struct {
	id    string
	store *synod.MemoryStorage
	acc   *synod.Acceptor // nil while crashed
	dead  bool            // gone for good, its data lost
}

// newAcceptor starts acceptor id over st (its data after a restart), with
// the configured state cache and storage faults.
func (s *sim) newAcceptor(id string, st *synod.MemoryStorage) *synod.Acceptor {
	size := s.cfg.StateCache
	switch {
	case size < 0:
		size = 0
	case size == 0:
		size = synod.DefaultStateCache
	}
	var store synod.Storage = st
	switch s.cfg.Fault {
	case FaultNoBallotCheck, FaultGCNoFence:
		// These write the storage behind the acceptor's back, which a
		// cache would hide from it.
		size = 0
	case FaultCacheFailedStore, FaultCacheStale:
		size = 0
		store = &simStorage{MemoryStorage: st, s: s, broken: make(map[string]synod.AcceptorState)}
	}
	if s.cfg.StoreFaults > 0 && store == synod.Storage(st) {
		store = &simStorage{MemoryStorage: st, s: s}
	}
	return synod.NewAcceptor(id, store, synod.WithStateCache(size))
}

// errInjected is the error of an injected storage failure.
var errInjected = fmt.Errorf("synodtest: injected storage failure: %w", synod.ErrStorage)

// simStorage is an acceptor's MemoryStorage with injected failures
// (StoreFaults) and, under FaultCacheFailedStore, the broken cache.
type simStorage struct {
	*synod.MemoryStorage
	s      *sim
	broken map[string]synod.AcceptorState
}

// fail reports whether this call fails.
func (m *simStorage) fail() bool {
	return m.s.cfg.StoreFaults > 0 && !m.s.final && !m.s.admin && m.s.rng.Float64() < m.s.cfg.StoreFaults
}

func (m *simStorage) Load(ctx context.Context, key string) (synod.AcceptorState, error) {
	if st, ok := m.broken[key]; ok {
		st.Value = slices.Clone(st.Value)
		return st, nil
	}
	if m.fail() {
		m.s.tracef("load %s fails", key)
		return synod.AcceptorState{}, errInjected
	}
	st, err := m.MemoryStorage.Load(ctx, key)
	if m.s.cfg.Fault == FaultCacheStale && err == nil {
		m.broken[key] = st // never updated again
		st.Value = slices.Clone(st.Value)
	}
	return st, err
}

func (m *simStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	if m.broken != nil && m.s.cfg.Fault == FaultCacheFailedStore {
		st.Value = slices.Clone(st.Value)
		m.broken[key] = st // the bug: before the store is known to succeed
	}
	if m.fail() {
		if m.s.rng.IntN(3) == 0 {
			m.s.tracef("store %s fails after writing", key)
			_ = m.MemoryStorage.Store(ctx, key, st)
		} else {
			m.s.tracef("store %s fails", key)
		}
		return errInjected
	}
	return m.MemoryStorage.Store(ctx, key, st)
}

func (m *simStorage) Delete(ctx context.Context, key string) error {
	delete(m.broken, key)
	return m.MemoryStorage.Delete(ctx, key)
}

func newSim(cfg SimConfig) *sim {
	s := &sim{
		cfg:            cfg,
		rng:            rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		acked:          make(map[string]synod.Ballot),
		collectedFloor: make(map[string]uint64),
		idx:            make(map[string]int),
		res:            &SimResult{},
	}
	s.synCfg = synod.Config{PrepareQuorum: cfg.PrepareQuorum, AcceptQuorum: cfg.AcceptQuorum}
	for i := range cfg.Acceptors {
		id := fmt.Sprintf("a%d", i)
		st := synod.NewMemoryStorage()
		s.idx[id] = len(s.accs)
		s.accs = append(s.accs, &simAcceptor{id: id, store: st, acc: s.newAcceptor(id, st)})
		s.synCfg.Acceptors = append(s.synCfg.Acceptors, id)
	}
	for i := range cfg.Keys {
		s.keys = append(s.keys, fmt.Sprintf("k%d", i))
	}
	var popts []synod.ProposerOption
	if cfg.TwoPhase {
		popts = append(popts, synod.WithFastPath(false))
	}
	for i := range cfg.Proposers {
		p, err := synod.NewProposer(synod.ProposerID(fmt.Sprintf("p%d", i), cfg.Seed), s.synCfg, popts...)
		if err != nil {
			panic(fmt.Sprintf("synodtest: simulation config: %v", err)) // a bug in this file, not input
		}
		pp := &simProposer{idx: i, p: p, opts: popts, seen: make(map[string]string), near: simNear(cfg.Seed, i, s.synCfg.Acceptors)}
		for slot := range cfg.Callers {
			pp.callers = append(pp.callers, &simCaller{slot: slot, opsLeft: cfg.Ops})
		}
		s.props = append(s.props, pp)
		s.cut = append(s.cut, make([]bool, cfg.Acceptors))
	}
	if cfg.Operations > 0 {
		s.newOperator(popts)
	}
	return s
}

// simNear returns proposer i's tiers of near acceptors (see
// SimConfig.Thrifty): none for a third of the proposers, one tier of one
// acceptor for a third, and for the rest a tier of one and a tier of the
// next, from a hash of the seed so that it draws nothing from the
// simulation's random streams (seeds keep their schedules).
func simNear(seed uint64, i int, acceptors []string) [][]string {
	h := (seed+uint64(i)+1)*0x9e3779b97f4a7c15 ^ seed>>29
	h ^= h >> 31
	if len(acceptors) < 2 || h%3 == 0 {
		return nil
	}
	k := int(h>>8) % len(acceptors)
	near := [][]string{{acceptors[k]}}
	if h%3 == 2 {
		near = append(near, []string{acceptors[(k+1)%len(acceptors)]})
	}
	return near
}

func (s *sim) tracef(format string, args ...any) {
	if s.cfg.Trace != nil {
		fmt.Fprintf(s.cfg.Trace, "t=%d "+format+"\n", append([]any{s.now}, args...)...)
	}
}

func (s *sim) violation(format string, args ...any) {
	msg := fmt.Sprintf("t=%d: ", s.now) + fmt.Sprintf(format, args...)
	s.tracef("VIOLATION %s", msg)
	s.res.Violations = append(s.res.Violations, msg)
}

func (s *sim) run() {
	for i, pp := range s.props {
		if s.op != nil && i == s.op.pp.idx {
			s.running++
			s.schedule(s.rng.Int64N(s.cfg.OpTimeout), event{kind: evOperator})
			continue
		}
		for slot := range pp.callers {
			s.running++
			s.schedule(s.rng.Int64N(s.cfg.MaxDelay+1), event{kind: evStart, p: i, c: slot})
		}
	}
	s.schedule(s.cfg.ChaosEvery, event{kind: evChaos})
	// Every operation ends by its deadline, so the run is bounded; the limit
	// only turns a scheduler bug into a violation instead of a hang.
	limit := int64(len(s.props)*s.cfg.Callers*s.cfg.Ops+len(s.keys)+4+s.cfg.Operations*(len(s.keys)+4)*8) * (s.cfg.OpTimeout + 4*s.cfg.MaxDelay)
	for s.q.Len() > 0 {
		ev := s.q.pop()
		s.now = ev.at
		if s.now > limit {
			s.violation("no end in sight after %d steps", limit)
			return
		}
		s.res.Events++
		s.handle(ev)
	}
	for _, pp := range s.props {
		left := pp.busy() || len(pp.queue) > 0 || pp.finalLeft > 0
		for _, cl := range pp.callers {
			left = left || cl.opsLeft > 0
		}
		if left {
			s.violation("proposer p%d stopped with work left", pp.idx)
		}
	}
}

func (s *sim) schedule(after int64, ev event) {
	s.seq++
	ev.at, ev.seq = s.now+after, s.seq
	s.q.push(ev)
}

func (s *sim) handle(ev event) {
	switch ev.kind {
	case evPrepare, evAccept, evRead:
		s.deliverRequest(ev)
	case evPrepareReply, evAcceptReply, evReadReply:
		s.deliverReply(ev)
	case evStart:
		s.startOp(s.props[ev.p], ev.c)
	case evTimeout:
		s.onTimeout(s.props[ev.p], ev.token)
	case evRetry:
		s.onRetry(s.props[ev.p], ev.token)
	case evChaos:
		s.chaos()
	case evRestart:
		s.restart(ev.a)
	case evHeal:
		s.heal()
	case evAdmin:
		s.deliverAdmin(ev)
	case evAdminReply:
		s.op.onAdminReply(ev)
	case evOperator:
		s.op.onTimer(ev.token)
	case evHedge:
		s.onHedgeDelay(s.props[ev.p], ev.token)
	case evStall:
		s.onStall(s.props[ev.p], ev.token)
	}
}

// send puts one message on the network: dropped, delayed, perhaps duplicated.
func (s *sim) send(ev event) {
	if !s.final && s.rng.Float64() < s.cfg.Drop {
		s.tracef("drop %s", ev.describe())
		if s.cfg.LostReplies && ev.kind != evAdmin && ev.kind != evAdminReply {
			s.res.LostReplies++
			s.schedule(1+s.rng.Int64N(s.cfg.MaxDelay), s.lostReply(ev))
		}
		return
	}
	copies := 1
	isRequest := ev.kind == evPrepare || ev.kind == evAccept || ev.kind == evRead || ev.kind == evAdmin
	if !s.final && (!isRequest || s.cfg.DuplicateRequests) && s.rng.Float64() < s.cfg.Duplicate {
		copies = 2
	}
	for range copies {
		s.schedule(1+s.rng.Int64N(s.cfg.MaxDelay), ev)
	}
}

func (s *sim) deliverRequest(ev event) {
	a := s.accs[ev.a]
	if a.acc == nil && !s.cut[ev.p][ev.a] && s.cfg.NoResponders && !s.cfg.DuplicateRequests {
		s.tracef("no responders for %s (acceptor down)", ev.describe())
		s.res.NotDelivered++
		s.send(s.notDelivered(ev))
		return
	}
	if a.acc == nil || s.cut[ev.p][ev.a] {
		s.tracef("lost %s (acceptor down or cut)", ev.describe())
		return
	}
	ctx := context.Background()
	// The operator's rounds (rescans) see no storage failures: it retries
	// a step until it succeeds, and would never end under many.
	s.admin = s.props[ev.p].operator
	defer func() { s.admin = false }()
	var key string
	reply := event{p: ev.p, a: ev.a}
	switch ev.kind {
	case evRead:
		key = ev.read.Key
		rep, err := a.acc.Read(ctx, ev.read)
		if err != nil {
			if !s.expected(err) {
				s.violation("acceptor %s: read %s: %v", a.id, key, err)
				return
			}
			rep = synod.ReadReply{From: a.id, Key: key, Err: err}
		}
		reply.kind, reply.readRep, reply.token = evReadReply, rep, ev.token
	case evPrepare:
		key = ev.prep.Key
		rep, err := a.acc.Prepare(ctx, ev.prep)
		if err != nil {
			if !s.expected(err) {
				s.violation("acceptor %s: prepare %v: %v", a.id, ev.prep.Ballot, err)
				return
			}
			rep = synod.PrepareReply{From: a.id, Key: key, Ballot: ev.prep.Ballot, Err: err}
		}
		reply.kind, reply.prepRep = evPrepareReply, rep
	default:
		key = ev.acc.Key
		rep, err := s.accept(a, ev.acc)
		if err != nil {
			if !s.expected(err) {
				s.violation("acceptor %s: accept %v: %v", a.id, ev.acc.Ballot, err)
				return
			}
			rep = synod.AcceptReply{From: a.id, Key: key, Ballot: ev.acc.Ballot, Err: err}
		}
		reply.kind, reply.accRep = evAcceptReply, rep
	}
	s.tracef("deliver %s", ev.describe())
	s.checkDurable(key)
	if s.cfg.Fault == FaultFalseNotDelivered && s.cfg.NoResponders && s.rng.IntN(2) == 0 {
		s.tracef("falsely not delivered: %s", ev.describe())
		reply = s.notDelivered(ev)
	}
	s.send(reply)
}

// expected reports whether an acceptor's error is one it may return: a stale
// epoch, or an injected storage failure.
func (s *sim) expected(err error) bool {
	return errors.Is(err, synod.ErrStaleEpoch) || (s.cfg.StoreFaults > 0 && errors.Is(err, errInjected))
}

// notDelivered returns the reply to request ev saying that it reached no
// acceptor.
func (s *sim) notDelivered(ev event) event {
	err := fmt.Errorf("synodtest: no responders for a%d: %w", ev.a, synod.ErrNotDelivered)
	id := s.accs[ev.a].id
	reply := event{p: ev.p, a: ev.a, token: ev.token}
	switch ev.kind {
	case evRead:
		reply.kind, reply.readRep = evReadReply, synod.ReadReply{From: id, Key: ev.read.Key, Err: err}
	case evPrepare:
		reply.kind, reply.prepRep = evPrepareReply, synod.PrepareReply{From: id, Key: ev.prep.Key, Ballot: ev.prep.Ballot, Err: err}
	default:
		reply.kind, reply.accRep = evAcceptReply, synod.AcceptReply{From: id, Key: ev.acc.Key, Ballot: ev.acc.Ballot, Err: err}
	}
	return reply
}

// lostReply is the reply with synod.ErrReplyLost that tells ev's proposer
// that ev (a request or a reply) was lost, or under FaultLostAsYes a yes.
func (s *sim) lostReply(ev event) event {
	lost := fmt.Errorf("synodtest: connection to a%d lost: %w", ev.a, synod.ErrReplyLost)
	id := s.accs[ev.a].id
	reply := event{p: ev.p, a: ev.a, token: ev.token}
	err := lost
	if s.cfg.Fault == FaultLostAsYes {
		err = nil // a yes, for prepares and accepts; reads ignore the fault
	}
	switch ev.kind {
	case evRead, evReadReply:
		key := ev.read.Key
		if ev.kind == evReadReply {
			key = ev.readRep.Key
		}
		reply.kind, reply.readRep = evReadReply, synod.ReadReply{From: id, Key: key, Err: lost}
	case evPrepare, evPrepareReply:
		r := synod.PrepareReply{From: id, Key: ev.prep.Key, Ballot: ev.prep.Ballot}
		if ev.kind == evPrepareReply {
			r = synod.PrepareReply{From: id, Key: ev.prepRep.Key, Ballot: ev.prepRep.Ballot}
		}
		r.OK, r.Err = err == nil, err
		reply.kind, reply.prepRep = evPrepareReply, r
	default:
		r := synod.AcceptReply{From: id, Key: ev.acc.Key, Ballot: ev.acc.Ballot}
		if ev.kind == evAcceptReply {
			r = synod.AcceptReply{From: id, Key: ev.accRep.Key, Ballot: ev.accRep.Ballot}
		}
		r.OK, r.Err = err == nil, err
		reply.kind, reply.accRep = evAcceptReply, r
	}
	return reply
}

// accept runs the accept rule, or under FaultNoBallotCheck the broken rule that
// accepts everything.
func (s *sim) accept(a *simAcceptor, req synod.AcceptRequest) (synod.AcceptReply, error) {
	if s.cfg.Fault != FaultNoBallotCheck {
		return a.acc.Accept(context.Background(), req)
	}
	ctx := context.Background()
	st, err := a.store.Load(ctx, req.Key)
	if err != nil {
		return synod.AcceptReply{}, err
	}
	st.Accepted, st.Value, st.Promised = req.Ballot, req.Value, req.Ballot
	if req.Ballot.Less(req.Next) {
		st.Promised = req.Next
	}
	return synod.AcceptReply{From: a.id, Key: req.Key, Ballot: req.Ballot, OK: true}, a.store.Store(ctx, req.Key, st)
}

func (s *sim) deliverReply(ev event) {
	if s.cut[ev.p][ev.a] {
		s.tracef("lost %s (cut)", ev.describe())
		return
	}
	s.tracef("deliver %s", ev.describe())
	pp := s.props[ev.p]
	if ev.kind == evReadReply {
		s.onReadReply(pp, ev)
		return
	}
	if pp.pr == nil {
		return
	}
	before := pp.pr.Status()
	if ev.kind == evPrepareReply {
		pp.pr.OnPrepareReply(ev.prepRep)
	} else {
		pp.pr.OnAcceptReply(ev.accRep)
	}
	s.thriftyReply(pp, ev)
	if pp.pr.Status() == before && s.allAnswered(pp, ev) {
		s.res.AllAnswered++
		s.tracef("p%d phase undecided although every acceptor asked answered: giving it up", pp.idx)
		s.onTimeout(pp, pp.token)
		return
	}
	if pp.pr.Status() == before {
		s.watchStall(pp)
	} else {
		s.endPhase(pp)
		s.drive(pp)
	}
}

// checkDurable asserts that the highest acknowledged commit of key is still
// accepted (or superseded) at enough living acceptors that every prepare
// quorum of living acceptors includes one of them, so the next round must
// build on it; during a membership step, for both configurations in use.
func (s *sim) checkDurable(key string) {
	b, ok := s.acked[key]
	if !ok {
		return
	}
	for _, c := range s.inUse() {
		holders, living := 0, 0
		for _, id := range c.Acceptors {
			a := s.accs[s.idx[id]]
			if a.dead {
				continue
			}
			living++
			if st, _ := a.store.Load(context.Background(), key); !st.Accepted.Less(b) {
				holders++
			}
		}
		if need := living - c.Q1() + 1; holders < need {
			s.violation("key %s: acknowledged ballot %v held by %d acceptors of %v, need %d", key, b, holders, c, need)
		}
	}
}

// inUse returns the configurations proposers may use now.
func (s *sim) inUse() []synod.Config {
	if s.op == nil {
		return []synod.Config{s.synCfg}
	}
	if s.op.cur.Epoch != s.op.prev.Epoch {
		return []synod.Config{s.op.prev, s.op.cur}
	}
	return []synod.Config{s.op.prev}
}

func (s *sim) checkAllDurable() {
	for _, k := range s.keys {
		s.checkDurable(k)
	}
}

func (s *sim) chaos() {
	if s.final {
		return
	}
	if s.rng.Float64() < s.cfg.Crash {
		i := s.rng.IntN(len(s.accs))
		if a := s.accs[i]; a.acc != nil && !a.dead {
			a.acc = nil
			if s.cfg.Fault == FaultAmnesia {
				a.store = synod.NewMemoryStorage()
			}
			s.tracef("crash %s", a.id)
			s.checkAllDurable()
			s.schedule(1+s.rng.Int64N(s.cfg.Downtime), event{kind: evRestart, a: i})
		}
	}
	if s.rng.Float64() < s.cfg.Partition {
		if s.rng.IntN(2) == 0 {
			a := s.rng.IntN(len(s.accs))
			for p := range s.cut {
				s.cut[p][a] = true
			}
			s.tracef("isolate a%d", a)
		} else {
			p, a := s.rng.IntN(len(s.props)), s.rng.IntN(len(s.accs))
			s.cut[p][a] = true
			s.tracef("cut p%d-a%d", p, a)
		}
		s.schedule(s.cfg.PhaseTimeout+s.rng.Int64N(6*s.cfg.PhaseTimeout), event{kind: evHeal})
	}
	if s.rng.Float64() < s.cfg.ProposerCrash {
		s.crashProposer(s.props[s.rng.IntN(s.cfg.Proposers)])
	}
	s.schedule(s.cfg.ChaosEvery, event{kind: evChaos})
}

func (s *sim) restart(i int) {
	a := s.accs[i]
	if a.acc != nil || a.dead {
		return
	}
	if s.cfg.Fault == FaultForgetPromise {
		ctx := context.Background()
		_ = a.store.Keys(ctx, func(k string) bool {
			st, _ := a.store.Load(ctx, k)
			st.Promised = st.Accepted
			_ = a.store.Store(ctx, k, st)
			return true
		})
	}
	a.acc = s.newAcceptor(a.id, a.store) // state = what was stored
	s.tracef("restart %s", a.id)
	s.checkAllDurable()
}

func (s *sim) heal() {
	for p := range s.cut {
		clear(s.cut[p])
	}
	s.tracef("heal")
}

// finish enters the final phase once every proposer has run its operations:
// the network heals and calms down, every acceptor restarts, and proposer 0
// reads every key, so that a lost value shows in the history.
func (s *sim) finish() {
	s.final = true
	s.tracef("final phase")
	s.heal()
	for i := range s.accs {
		s.restart(i)
	}
	pp := s.props[0]
	if s.op != nil && pp.p.Adopt(s.op.prev) {
		// Every acceptor p0 knows may be gone for good (replaced while it
		// was idle), and then none can tell it the new configuration: it
		// learns it out of band, as a real proposer would from discovery.
		s.tracef("p0 adopts %v", s.op.prev)
	}
	pp.finalLeft = len(s.keys)
	s.schedule(1, event{kind: evStart, p: 0})
}

// event is one scheduled happening.
type event struct {
	at    int64
	seq   uint64
	kind  evKind
	p, a  int    // proposer and acceptor index
	c     int    // evStart: the proposer's caller
	token uint64 // for timers: the proposer's token when set; for reads: the read's ID

	prep    synod.PrepareRequest
	acc     synod.AcceptRequest
	read    synod.ReadRequest
	prepRep synod.PrepareReply
	accRep  synod.AcceptReply
	readRep synod.ReadReply
	admin   adminMsg
}

type evKind uint8

const (
	evPrepare evKind = iota
	evAccept
	evPrepareReply
	evAcceptReply
	evStart
	evTimeout
	evRetry
	evChaos
	evRestart
	evHeal
	evRead
	evReadReply
	evAdmin
	evAdminReply
	evOperator
	evHedge
	evStall
)

func (ev event) describe() string {
	switch ev.kind {
	case evPrepare:
		return fmt.Sprintf("p%d→a%d prepare %s %v", ev.p, ev.a, ev.prep.Key, ev.prep.Ballot)
	case evAccept:
		return fmt.Sprintf("p%d→a%d accept %s %v %q next %v", ev.p, ev.a, ev.acc.Key, ev.acc.Ballot, ev.acc.Value, ev.acc.Next)
	case evPrepareReply:
		r := ev.prepRep
		if r.Err != nil {
			return fmt.Sprintf("a%d→p%d prepare error %s %v: %v", ev.a, ev.p, r.Key, r.Ballot, r.Err)
		}
		if r.OK {
			return fmt.Sprintf("a%d→p%d promise %s %v accepted %v %q", ev.a, ev.p, r.Key, r.Ballot, r.Accepted, r.Value)
		}
		return fmt.Sprintf("a%d→p%d prepare refused %s %v seen %v", ev.a, ev.p, r.Key, r.Ballot, r.Seen)
	case evRead:
		return fmt.Sprintf("p%d→a%d read#%d %s", ev.p, ev.a, ev.token, ev.read.Key)
	case evReadReply:
		r := ev.readRep
		if r.Err != nil {
			return fmt.Sprintf("a%d→p%d read#%d error %s: %v", ev.a, ev.p, ev.token, r.Key, r.Err)
		}
		return fmt.Sprintf("a%d→p%d read#%d %s promised %v accepted %v %q", ev.a, ev.p, ev.token, r.Key, r.Promised, r.Accepted, r.Value)
	case evAcceptReply:
		r := ev.accRep
		if r.Err != nil {
			return fmt.Sprintf("a%d→p%d accept error %s %v: %v", ev.a, ev.p, r.Key, r.Ballot, r.Err)
		}
		if r.OK {
			return fmt.Sprintf("a%d→p%d accepted %s %v", ev.a, ev.p, r.Key, r.Ballot)
		}
		return fmt.Sprintf("a%d→p%d accept refused %s %v seen %v", ev.a, ev.p, r.Key, r.Ballot, r.Seen)
	case evAdmin, evAdminReply:
		return fmt.Sprintf("admin p%d-a%d %s", ev.p, ev.a, ev.admin)
	}
	return fmt.Sprintf("event %d", ev.kind)
}

// eventQueue is a binary min-heap of events by (at, seq).
type eventQueue struct{ h []event }

func (q *eventQueue) Len() int { return len(q.h) }

func (q *eventQueue) less(i, j int) bool {
	if q.h[i].at != q.h[j].at {
		return q.h[i].at < q.h[j].at
	}
	return q.h[i].seq < q.h[j].seq
}

func (q *eventQueue) push(ev event) {
	q.h = append(q.h, ev)
	for i := len(q.h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q.less(i, parent) {
			break
		}
		q.h[i], q.h[parent] = q.h[parent], q.h[i]
		i = parent
	}
}

func (q *eventQueue) pop() event {
	top := q.h[0]
	last := len(q.h) - 1
	q.h[0] = q.h[last]
	q.h = q.h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && q.less(l, m) {
			m = l
		}
		if r < last && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}
