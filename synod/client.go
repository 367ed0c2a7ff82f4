package synod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Transport carries a phase's request to acceptors and their replies back.
//
// Prepare and Accept send req to every acceptor in to and return without
// waiting for replies. Until ctx is done, the transport delivers each reply it
// receives to replies with a send that never blocks (if replies is full, the
// reply is dropped); the caller gives replies room for one reply per acceptor. A
// transport may drop, delay, duplicate and reorder replies; the Proposal ignores
// replies that do not belong to the current attempt. An error means the request
// may not have reached every acceptor; replies that do arrive are still delivered.
//
// A transport delivers each request to each acceptor at most once (NATS core
// publishes are at-most-once, and the Client never resends a request: a retry
// is a new attempt with a new ballot). A second delivery of an accept, arriving
// after the acceptor moved on to a higher ballot, would be refused although the
// first was taken, and a Proposal that hears only refusals takes its value to be
// nowhere (see the package doc, duty 7). For the same reason a transport
// answers a request with a reply whose Err matches ErrNotDelivered only when
// it knows that no acceptor got it and none ever will (NATS "no responders"),
// never for a request that merely timed out. A reply whose Err matches
// ErrReplyLost, which a transport may deliver when it knows that no reply
// will come (its connection dropped), claims nothing about the request: the
// Client takes it for no vote, and gives up a phase that every acceptor it
// asked has answered without a decision at once instead of at its timeout.
type Transport interface {
	Prepare(ctx context.Context, to []string, req PrepareRequest, replies chan<- PrepareReply) error
	Accept(ctx context.Context, to []string, req AcceptRequest, replies chan<- AcceptReply) error
}

// Reader is an optional Transport ability: sending a ReadRequest, which asks
// acceptors for their state without changing it. Like Prepare and Accept, Read
// sends req to every acceptor in to, returns without waiting, and delivers
// replies to replies with a send that never blocks until ctx is done.
type Reader interface {
	Read(ctx context.Context, to []string, req ReadRequest, replies chan<- ReadReply) error
}

// Nearness is an optional Transport ability: knowing how far the acceptors
// are from the client, such as which are in its own zone and which in
// farther ones. A thrifty Client (see WithThrifty) fills its subset from the
// nearest acceptors, so that its one-round-trip accepts wait for no farther
// acceptor than they must. Safety does not depend on the answer.
type Nearness interface {
	// Near returns acceptor IDs in tiers of distance, the nearest tier
	// first (acceptors in no tier come after the last), or nil when the
	// transport does not know or finds them all about equally near. It is
	// called on every thrifty phase, so it must be cheap, and the caller
	// may keep the slices: a changed answer is a new slice.
	Near() [][]string
}

// Client runs changes of registers against a set of acceptors: it is the thin
// driver that adds contexts, timers, backoff and a Transport to the pure
// Proposer. It is safe for concurrent use. Rounds of one key from one Client
// run one at a time, so that a sequence of changes of a key takes the
// one-round-trip path. Changes of a key that queue behind its running round
// run together in the next one (change batching, see Change and
// WithBatching), in call order as far as the Go scheduler allows.
type Client struct {
	tr      Transport
	opts    clientOptions
	metrics *clientMetrics

	thr  *thrifty // nil without thrifty phases
	near Nearness // the Transport's, nil if it has none

	mu   sync.Mutex // guards p and rng
	p    *Proposer
	rng  *rand.Rand
	keys keyQueues

	refreshing atomic.Bool // a ConfigSource call is under way
}

// ConfigSource finds the cluster's current configuration when the acceptors
// of cur do not answer: it returns a configuration, newer than cur or not,
// or an error. natstransport.Transport.DiscoverConfig is one.
type ConfigSource func(ctx context.Context, cur Config) (Config, error)

// WithConfigSource sets where the client looks for a newer configuration when
// no quorum of its own answers (a phase timed out, or a change failed with
// ErrUnavailable): a proposer that slept through the replacement of every
// acceptor it knew cannot learn the new set from them. A newer configuration
// the source returns is adopted (see Adopt) and the change retried under it.
// Acceptors that do answer carry newer configurations in their stale-epoch
// refusals; the source is for when none does. Default: none.
func WithConfigSource(src ConfigSource) Option {
	return func(o *clientOptions) { o.configSource = src }
}

type clientOptions struct {
	phaseTimeout   time.Duration
	defaultTimeout time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	rng            *rand.Rand
	logger         *slog.Logger
	proposer       []ProposerOption
	noLeanReads    bool
	maxBatch       int
	meterProvider  metric.MeterProvider
	configSource   ConfigSource
	noThrifty      bool
	hedgeDelay     time.Duration
	suspectFor     time.Duration
	now            func() time.Time // for tests; time.Now if nil
}

func defaultClientOptions() clientOptions {
	return clientOptions{
		phaseTimeout:   time.Second,
		defaultTimeout: 10 * time.Second,
		backoffMin:     time.Millisecond,
		backoffMax:     100 * time.Millisecond,
		maxBatch:       DefaultMaxBatch,
		suspectFor:     defaultSuspectFor,
		logger:         slog.New(slog.DiscardHandler),
	}
}

// Option configures a Client.
type Option func(*clientOptions)

// WithPhaseTimeout sets how long one phase waits for a quorum before the
// attempt is retried with a higher ballot (default 1s). Lost messages cost this
// long.
func WithPhaseTimeout(d time.Duration) Option { return func(o *clientOptions) { o.phaseTimeout = d } }

// WithDefaultTimeout bounds a change whose context has no deadline (default 10s),
// so a change without a deadline still ends when no quorum answers.
func WithDefaultTimeout(d time.Duration) Option {
	return func(o *clientOptions) { o.defaultTimeout = d }
}

// WithBackoff sets the range of the jittered exponential backoff between
// attempts that competing proposers refused (default 1ms to 100ms).
func WithBackoff(lo, hi time.Duration) Option {
	return func(o *clientOptions) { o.backoffMin, o.backoffMax = lo, hi }
}

// WithRand sets the source of backoff jitter; seed it for reproducible runs.
func WithRand(r *rand.Rand) Option { return func(o *clientOptions) { o.rng = r } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *clientOptions) { o.logger = l } }

// WithLeanReads enables (the default) or disables reads with no disk write:
// with them, Read first asks the acceptors for their state (when the
// Transport implements Reader) and falls back to a full round only when they
// do not agree. Disabled, every Read is a full round, as ReadRound is.
func WithLeanReads(on bool) Option { return func(o *clientOptions) { o.noLeanReads = !on } }

// WithThrifty enables (the default) or disables thrifty phases: a
// one-round-trip accept (a change of a key whose last write was this
// client's: the common case of a key with one writer, such as an actor's
// state) goes first to Q2 acceptors of the configuration instead of to all
// of them, which saves the others' requests, fsyncs and messages. Every
// other phase (prepares, and the accepts that follow them) goes to every
// acceptor: those are where proposers contend, and sending them to a subset
// left many more changes indeterminate under contention and network faults.
//
// The subset is the client's own (ThriftySplitNear of its proposer ID and
// its Transport's tiers, see Nearness), not one per key: all of a client's
// requests to an acceptor then share the Transport's frames to it, which
// stay as large as with every acceptor asked, and a third fewer frames
// travel (with three acceptors). Subsets per
// key would spread each client's requests over every acceptor in smaller
// frames, and with many changes in flight it is the cost per frame, not per
// request, that bounds acceptors and NATS servers. Clients with different
// proposer IDs spread over the acceptors, and no acceptor gets more requests
// than it would with every acceptor asked. When the Transport knows how far
// the acceptors are (a Nearness), the subset takes them nearest tier first,
// and within a tier as the proposer ID picks: a client in a zone with one
// acceptor, whose other two acceptors are one near zone and one far one,
// waits for the near zone only.
//
// The others get the accept too (a hedge) as soon as a reply of the subset
// is not a yes (a refusal, a storage failure, a request not delivered, a
// stale epoch), when sending to the subset fails, or when the hedge delay
// (see WithHedgeDelay) passes with the phase still pending. An acceptor of
// the subset that had still not answered when a phase hedged on the delay
// ended, or that answered with an error, is suspected: the subsets of the
// next phases leave it out for a second (then it is tried again), so a dead
// or paused acceptor costs one hedge delay per second, not one per change. A
// phase after one that timed out or stalled (a quorum answered but split, and
// the others stayed silent for two hedge delays) goes to every acceptor at
// once. Lean reads (see Read) always ask every acceptor.
//
// Disabled, every phase goes to every acceptor at once. That is better
// under network latency with jitter, where a fixed subset forgoes the
// fastest two replies of three, and when one acceptor is much farther than
// the others (another zone) and the Transport cannot tell (it has no
// Nearness): then a client whose subset holds the far acceptor waits for
// it. A paused
// acceptor or nats-server costs less with thrifty phases (the README's
// performance section has the figures).
func WithThrifty(on bool) Option { return func(o *clientOptions) { o.noThrifty = !on } }

// WithHedgeDelay fixes how long a thrifty phase (see WithThrifty) waits for
// its subset before it sends the request to the other acceptors too. By
// default (0) the delay adapts: four times the smoothed latency of recent
// replies to thrifty phases plus four mean deviations, at least 2ms
// and at most a quarter of the phase timeout (20ms before the first
// sample).
func WithHedgeDelay(d time.Duration) Option { return func(o *clientOptions) { o.hedgeDelay = d } }

// WithProposerOptions passes options to the underlying Proposer, such as
// WithFastPath(false).
func WithProposerOptions(opts ...ProposerOption) Option {
	return func(o *clientOptions) { o.proposer = append(o.proposer, opts...) }
}

// NewClient returns a Client that proposes as proposerID (see RandomProposerID;
// it must be unique to this process run) to the acceptors of cfg over tr.
func NewClient(proposerID string, cfg Config, tr Transport, opts ...Option) (*Client, error) {
	o := defaultClientOptions()
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case tr == nil:
		return nil, errorf(ErrInvalidConfig, "nil transport")
	case o.phaseTimeout <= 0 || o.defaultTimeout <= 0:
		return nil, errorf(ErrInvalidConfig, "timeouts must be positive")
	case o.backoffMin <= 0 || o.backoffMax < o.backoffMin:
		return nil, errorf(ErrInvalidConfig, "backoff range %v..%v", o.backoffMin, o.backoffMax)
	case o.hedgeDelay < 0 || o.suspectFor <= 0:
		return nil, errorf(ErrInvalidConfig, "hedge delay %v, suspicion period %v", o.hedgeDelay, o.suspectFor)
	case o.maxBatch < 1:
		return nil, errorf(ErrInvalidConfig, "max batch %d < 1", o.maxBatch)
	}
	p, err := NewProposer(proposerID, cfg, o.proposer...)
	if err != nil {
		return nil, err
	}
	rng := o.rng
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	m, err := newClientMetrics(o.meterProvider)
	if err != nil {
		return nil, err
	}
	c := &Client{tr: tr, opts: o, metrics: m, p: p, rng: rng}
	if !o.noThrifty {
		c.thr = newThrifty(o)
		c.near, _ = tr.(Nearness)
	}
	return c, nil
}

// ID returns the client's proposer ID.
func (c *Client) ID() string { return c.p.ID() }

// Config returns the configuration the client's proposer uses now: the one it
// was built with, or a newer one it adopted from a stale-epoch refusal.
func (c *Client) Config() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p.Config().Clone()
}

// Adopt switches the client to cfg if its epoch is newer (see Proposer.Adopt)
// and reports whether it did.
func (c *Client) Adopt(cfg Config) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p.Adopt(cfg)
}

// Change applies f to the register key atomically and returns the new value.
//
// If f returns an error, the register keeps its value, which is written back
// through a quorum before Change returns that value with f's error unchanged, so
// the error was computed from a value that is really the latest. Other errors:
// ErrIndeterminate (the change may or may not have been applied), a
// *ConflictError matching ErrConflict, or ErrUnavailable; the last two mean the
// change was not applied, and when ctx ended they also wrap ctx.Err(). When
// acceptors answer that their storage failed (see ErrStorage) and too few
// others remain for a quorum, Change returns at once with an error matching
// ErrStorage (and ErrNoSpace when that was the cause): alone it means the
// change was not applied; if the change's value may have reached an acceptor
// it matches ErrIndeterminate too. Likewise, when the Transport reports that
// requests reached no acceptor process (ErrNotDelivered: the acceptors are
// down) and too few others remain, Change returns at once with
// ErrUnavailable, plus ErrIndeterminate if the value may have reached one.
//
// Changes of key from this Client that arrive while a round of key runs
// queue, and the queued ones run together in the next round (unless
// WithBatching(false)): their functions are applied in order, each to the
// value the one before it returned, and the last value is committed once.
// Each caller gets its own result: the value its function returned, or its
// function's error with the value its function was given (its change is
// skipped; the others still apply). A round's failure is every caller's:
// if the round is indeterminate, so is every change in it, even one whose
// function erred. A caller whose ctx ends while it queues is dropped (its
// change does not run; ErrUnavailable wrapping ctx.Err()); once its change is
// in a round, it waits for the round, which ends at the earliest deadline of
// its callers or when all of them gave up. A lone change runs at once: there
// is no timer. f may run on another caller's goroutine; if it panics, its
// change is skipped like one that erred and Change panics with the same value
// on the caller's goroutine once the round ended.
func (c *Client) Change(ctx context.Context, key string, f ChangeFunc) ([]byte, error) {
	if f == nil {
		return nil, errorf(ErrInvalidRequest, "change %q: nil change function", key)
	}
	return c.do(ctx, key, f)
}

// Read returns the register's value, linearizably: it reflects every change
// that completed before Read began, and never a value older than one a
// completed Read returned.
//
// When the Transport implements Reader (and WithLeanReads is not off) it
// first asks the acceptors for their state, which writes nothing: if
// ReadQuorum of them report the same accepted ballot, that ballot's value is
// the answer after one round trip (see the package doc, "Reads with no disk
// write"). Otherwise, and after a phase timeout, it reads through a full
// round, as ReadRound does.
func (c *Client) Read(ctx context.Context, key string) ([]byte, error) {
	r, ok := c.tr.(Reader)
	if !ok || c.opts.noLeanReads {
		return c.do(ctx, key, nil)
	}
	if key == "" {
		return nil, errorf(ErrInvalidRequest, "empty key")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.defaultTimeout)
		defer cancel()
	}
	start := time.Now()
	cfg := c.Config()
	lr := NewLeanRead(cfg, key)
	if c.leanRead(ctx, r, cfg.Acceptors, lr) {
		v, _ := lr.Result()
		c.metrics.readPath(ctx, true, 1)
		c.metrics.done(ctx, true, start, 1, false, nil)
		return v, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("synod: read %q: %w (%w)", key, ErrUnavailable, ctx.Err())
	}
	c.mu.Lock()
	c.p.Observe(lr.Seen())
	c.mu.Unlock()
	return c.do(ctx, key, nil)
}

// ReadRound returns the register's value through a full round, the identity
// change, whatever the Transport can do: it costs what a change costs (a
// promise, or a write-back on the one-round-trip path, persisted by a quorum)
// and is linearizable like Read.
func (c *Client) ReadRound(ctx context.Context, key string) ([]byte, error) {
	return c.do(ctx, key, nil)
}

// leanRead runs lr's one phase and reports whether it read the value.
func (c *Client) leanRead(ctx context.Context, r Reader, to []string, lr *LeanRead) bool {
	pctx, cancel := context.WithTimeout(ctx, c.opts.phaseTimeout)
	defer cancel()
	ch := make(chan ReadReply, len(to))
	if err := r.Read(pctx, to, lr.Request(), ch); err != nil {
		// Not every acceptor may have it: let the full round deal with it.
		c.opts.logger.Debug("synod: read send failed", "key", lr.Key(), "err", err)
		lr.GiveUp()
	}
	var stall *time.Timer // armed once a quorum answered without agreeing
	defer func() {
		if stall != nil {
			stall.Stop()
		}
	}()
	var stalled <-chan time.Time
	for lr.Status() == ReadPending {
		select {
		case rep := <-ch:
			lr.OnReadReply(rep)
			if stall == nil && lr.QuorumHeard() {
				stall = time.NewTimer(c.stallWait())
				stalled = stall.C
			}
		case <-stalled:
			c.opts.logger.Debug("synod: lean read answered by a quorum that disagrees; reading through a round", "key", lr.Key())
			lr.GiveUp()
		case <-pctx.Done():
			lr.GiveUp()
		}
	}
	return lr.Status() == ReadDone
}

// stallWait is how long a phase or lean read that a quorum answered without
// a decision waits for the acceptors still silent before it is given up:
// two hedge delays with thrifty phases, a quarter of the phase timeout
// without.
func (c *Client) stallWait() time.Duration {
	if c.thr != nil {
		return 2 * c.thr.delay()
	}
	return c.opts.phaseTimeout / 4
}

// refreshConfig asks the ConfigSource, if there is one and no other call
// is under way, for a newer configuration, adopts it, and reports whether
// it did.
func (c *Client) refreshConfig(ctx context.Context) bool {
	if c.opts.configSource == nil || !c.refreshing.CompareAndSwap(false, true) {
		return false
	}
	defer c.refreshing.Store(false)
	cur := c.Config()
	cfg, err := c.opts.configSource(ctx, cur)
	if err != nil {
		c.opts.logger.Debug("synod: configuration source failed", "err", err)
		return false
	}
	if !c.Adopt(cfg) {
		return false
	}
	c.opts.logger.Info("synod: adopted a newer configuration", "from", cur.String(), "to", cfg.String())
	return true
}

func isConflict(err error) bool {
	_, ok := err.(*ConflictError)
	return ok
}

func isStorage(err error) bool {
	_, ok := err.(*storageError)
	return ok
}

// retry backs off, then starts a new attempt, or abandons the proposal once ctx
// is done. While it backs off it keeps feeding late replies to a refused accept,
// waiting for the rest of them up to a quarter of the phase timeout, so that a
// value every acceptor refused does not make the retry indeterminate.
func (c *Client) retry(ctx context.Context, pr *Proposal, late <-chan AcceptReply) {
	_, newer := pr.NewerConfig() // retry under the newer configuration at once
	if ctx.Err() == nil && (!newer || late != nil) {
		c.mu.Lock()
		d := c.backoff(pr.Attempts())
		c.mu.Unlock()
		backoff := time.NewTimer(d)
		defer backoff.Stop()
		var settle <-chan time.Time
		if late != nil {
			t := time.NewTimer(c.opts.phaseTimeout / 4)
			defer t.Stop()
			settle = t.C
		}
		for backedOff := false; !backedOff || late != nil; {
			select {
			case <-ctx.Done():
				backedOff, late = true, nil
			case r := <-late:
				if pr.OnAcceptReply(r); !pr.Unsettled() {
					late = nil
				}
			case <-backoff.C:
				backedOff = true
			case <-settle:
				late = nil
			}
		}
	}
	if ctx.Err() != nil {
		pr.Abandon()
		return
	}
	c.mu.Lock()
	pr.Retry(c.p)
	c.mu.Unlock()
}

// tiers returns the Transport's tiers of acceptors (see Nearness), nil if
// it has none.
func (c *Client) tiers() [][]string {
	if c.near == nil {
		return nil
	}
	return c.near.Near()
}

// backoff returns a full-jitter exponential delay for the given attempt.
func (c *Client) backoff(attempt int) time.Duration {
	hi := c.opts.backoffMin << min(attempt, 20)
	if hi > c.opts.backoffMax || hi <= 0 {
		hi = c.opts.backoffMax
	}
	return c.opts.backoffMin + time.Duration(c.rng.Int64N(int64(hi-c.opts.backoffMin)+1))
}

// phase sends the current request and feeds replies to pr until the phase
// ends. It reports false if the phase timed out or ctx ended first. The phase's
// context lives until the caller calls cancel, so that replies to an accept can
// still arrive on accepts after the phase was decided.
//
// Thrifty (see WithThrifty), a one-round-trip accept goes first to the
// client's subset of pr's configuration only (ThriftySplit), and to the
// others (a hedge) as soon as the subset alone can no longer win (a reply
// that is not a yes, a failed send) or the hedge delay passes with the phase
// still pending. An accept
// carrying the change's result is not hedged on a refusal while it may be
// nowhere: if its whole subset refuses, the others are withheld
// (Proposal.Withhold) and the phase is lost with its result nowhere. With
// all, or without thrifty phases, the request goes to every acceptor at once.
//
// A phase stalls when a quorum of acceptors has answered but split (yes and
// no, or failures), so that only the acceptors still silent can decide it.
// Those are paused or cut off as often as slow, and waiting for them would
// hold the change until the phase timeout. Once the stall wait (see
// stallWait) has passed with the phase still undecided, phase gives it up
// (ok false, stalled true) as a phase timeout would: the retry goes to every
// acceptor at a higher ballot, which the acceptors that answered can decide.
//
// With settle, a won accept phase also waits (within the phase timeout) for
// the replies of every acceptor it was sent to, so that they all stored the
// value when it returns.
func (c *Client) phase(ctx context.Context, pr *Proposal, all, settle bool) (ok, stalled bool, accepts <-chan AcceptReply, cancel context.CancelFunc) {
	pctx, cancel := context.WithTimeout(ctx, c.opts.phaseTimeout)
	req := pr.Request()
	cfg := pr.Config()
	first, rest := cfg.Acceptors, []string(nil)
	if c.thr != nil && !all && pr.OneRoundTrip() {
		first, rest = c.thr.split(cfg, c.p.ID(), c.tiers(), req.Accept != nil)
	}
	if p := req.Prepare; p != nil {
		ok, stalled, _ := runPhase(c, pctx, pr, first, rest,
			func(to []string, ch chan<- PrepareReply) error { return c.tr.Prepare(pctx, to, *p, ch) },
			pr.OnPrepareReply,
			func(r PrepareReply) (string, bool, error) { return r.From, r.OK && r.Err == nil, r.Err })
		return ok, stalled, nil, cancel
	}
	a := req.Accept
	ok, stalled, ch := runPhase(c, pctx, pr, first, rest,
		func(to []string, ch chan<- AcceptReply) error { return c.tr.Accept(pctx, to, *a, ch) },
		pr.OnAcceptReply,
		func(r AcceptReply) (string, bool, error) { return r.From, r.OK && r.Err == nil, r.Err })
	if !ok || ch == nil {
		return ok, stalled, nil, cancel
	}
	if settle && pr.committed {
		heard := make(map[string]bool, len(cfg.Acceptors))
		for _, id := range pr.voted { // the replies the phase counted
			heard[id] = true
		}
		for len(heard) < len(first)+len(rest) {
			select {
			case r := <-ch:
				heard[r.From] = true
			case <-pctx.Done():
				return true, false, nil, cancel
			}
		}
		return true, false, nil, cancel
	}
	return true, false, ch, cancel
}

// Reasons for a hedge, as the hedges metric reports them.
const (
	hedgeRefused = iota // a reply of the subset was not a yes
	hedgeSend           // sending to the subset failed
	hedgeDelay          // the hedge delay passed
)

// runPhase is phase for one kind of request: send sends it to some
// acceptors, feed gives pr a reply, and answer tells who sent a reply,
// whether it is a yes, and its error. It returns false if pctx ended first
// or the phase stalled (then stalled is true), and the replies' channel
// unless the request could not be sent at all.
func runPhase[R any](c *Client, pctx context.Context, pr *Proposal, first, rest []string,
	send func(to []string, ch chan<- R) error, feed func(R), answer func(R) (from string, yes bool, err error)) (ok, stalled bool, _ chan R) {
	st := pr.Status()
	ch := make(chan R, len(pr.Config().Acceptors))
	var start, hedgedAt time.Time // when first and rest were sent
	if len(rest) > 0 {
		start = time.Now()
	}
	hedged, refused := false, false // refused: a reply of the subset was not a yes
	delayed := false                // hedged because the delay passed
	withheld := false               // told pr that rest never got the request
	var stall <-chan time.Time      // fires the stall wait after a quorum answered
	var answered []string           // acceptors that answered, with a vote or not
	var timers [2]*time.Timer       // the hedge delay's and the stall's
	hedge := func(why int) bool {
		if hedged || withheld || len(rest) == 0 {
			return false
		}
		hedged, hedgedAt = true, time.Now()
		c.metrics.hedge(pctx, why)
		if err := send(rest, ch); err != nil {
			if unsendable(pr, err) {
				return true
			}
			c.opts.logger.Debug("synod: hedge send failed", "key", pr.Key(), "err", err)
		}
		return false
	}
	defer func() {
		for _, t := range timers {
			if t != nil {
				t.Stop()
			}
		}
	}()
	if err := send(first, ch); err != nil {
		if unsendable(pr, err) {
			return true, false, nil
		}
		c.opts.logger.Debug("synod: send failed", "key", pr.Key(), "err", err)
		if hedge(hedgeSend) {
			return true, false, nil
		}
	}
	var fire <-chan time.Time
	if len(rest) > 0 && !hedged {
		timers[0] = time.NewTimer(c.thr.delay())
		fire = timers[0].C
	}
	for pr.Status() == st {
		select {
		case r := <-ch:
			feed(r)
			from, yes, err := answer(r)
			if len(rest) > 0 { // a reply's latency, from when it was sent
				sent := start
				if hedged && !slices.Contains(first, from) {
					sent = hedgedAt
				}
				c.thr.observe(time.Since(sent))
			}
			if !slices.Contains(answered, from) {
				answered = append(answered, from)
			}
			// Every acceptor asked answered, some without a vote (their
			// replies were lost, say): nothing more can decide the phase.
			if pr.Status() == st && (hedged || withheld || len(rest) == 0) && len(answered) >= asked(first, rest, hedged) {
				c.metrics.undecidedPhase(pctx)
				c.opts.logger.Debug("synod: every acceptor answered the phase, undecided; retrying with every acceptor",
					"key", pr.Key(), "status", pr.Status(), "yes", pr.yes, "no", pr.no, "failed", pr.failed)
				c.thr.suspectSilent(pr, first, delayed)
				return false, true, ch
			}
			if timers[1] == nil && pr.Status() == st && pr.QuorumHeard() {
				timers[1] = time.NewTimer(c.stallWait())
				stall = timers[1].C
			}
			if hedged || len(rest) == 0 {
				continue
			}
			if !yes {
				refused = true
				if err != nil && staleConfig(err) == nil && slices.Contains(first, from) {
					c.thr.suspect(from)
				}
			}
			// Once the subset alone cannot win, the others are needed. But
			// an accept whose result may be nowhere waits for the rest of
			// its subset: if they too refuse, it is lost and its result
			// nowhere (the others never got it), a determinate retry.
			if pr.Withhold(rest) {
				withheld = true // rest must never get it now
				continue
			}
			if !refused || pr.MayBeNowhere() {
				continue
			}
			if hedge(hedgeRefused) {
				return true, false, nil
			}
		case <-fire:
			fire = nil
			if !hedged && !withheld {
				delayed = true
				if hedge(hedgeDelay) {
					return true, false, nil
				}
			}
		case <-stall: // still pending, and replies only add votes
			c.metrics.stall(pctx)
			c.opts.logger.Debug("synod: phase answered by a quorum stayed undecided; retrying with every acceptor",
				"key", pr.Key(), "status", pr.Status(), "yes", pr.yes, "no", pr.no, "failed", pr.failed)
			c.thr.suspectSilent(pr, first, delayed)
			return false, true, ch
		case <-pctx.Done():
			c.thr.suspectSilent(pr, first, delayed)
			return false, false, ch
		}
	}
	c.thr.suspectSilent(pr, first, delayed)
	return true, false, ch
}

// asked is how many acceptors a phase sent its request to.
func asked(first, rest []string, hedged bool) int {
	if hedged {
		return len(first) + len(rest)
	}
	return len(first)
}

// unsendable ends pr when the transport refused its request as invalid before
// sending it (a value over its size limit, say): waiting for replies or
// retrying could only run out the deadline. It reports whether it did.
func unsendable(pr *Proposal, err error) bool {
	if !errors.Is(err, ErrInvalidRequest) {
		return false
	}
	pr.Unsendable(fmt.Errorf("synod: change %q: %w", pr.Key(), err))
	return true
}
