package natstransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/synod"
)

// NATS status header of the server's "no responders" answer to a message with
// a reply subject that nobody subscribes to.
const (
	statusHeader       = "Status"
	statusNoResponders = "503"
)

// Transport is the proposer side: a synod.Transport over NATS. It is safe for
// concurrent use.
//
// Each Prepare or Accept publishes the request to every acceptor's subject
// with its own reply subject <inbox>.<request ID>.<index of the acceptor>, all
// under one wildcard subscription per Transport. Replies are matched to the
// pending request by those two numbers, so a reply counts only for the
// acceptor it was sent to and only once; a reply whose sender, key or ballot
// does not match is ignored. Nothing runs per request: context.AfterFunc drops
// the pending entry when the request's context ends, and the entry also goes
// once every acceptor has answered.
type Transport struct {
	nc      *nats.Conn
	cluster string
	opts    options
	log     *slog.Logger
	inbox   string // reply subjects are inbox.<id>.<index>
	sub     *nats.Subscription
	nextID  atomic.Uint64

	mu       sync.Mutex
	closed   bool
	pending  map[uint64]*pending
	subjects map[string][2]string // acceptor ID → prepare, accept subjects
}

var _ synod.Transport = (*Transport)(nil)

// pending is one scattered request waiting for replies.
type pending struct {
	ctx       context.Context
	isPrepare bool
	key       string
	ballot    synod.Ballot
	to        []string
	got       []bool
	left      int
	prepares  chan<- synod.PrepareReply
	accepts   chan<- synod.AcceptReply
	stop      func() bool // unregisters the AfterFunc; nil until registered
}

// NewTransport returns a Transport to the acceptors of cluster over nc. The
// connection and its options are the caller's: pass nats.Option values such
// as nats.UserCredentials(file), nats.Nkey or nats.NkeyOptionFromSeed, and
// nats.Secure / nats.RootCAs / nats.ClientCert (TLS) to nats.Connect with a
// comma-separated URL list, and set reconnect options there; after a reconnect
// the Transport's subscription is restored by nats.go. Phases that run while
// the connection is down get no replies and time out, so changes then fail
// with synod.ErrUnavailable or synod.ErrIndeterminate within their deadline.
//
// The proposer needs permission to publish to the acceptors' subjects and to
// subscribe to its inbox (_INBOX.> unless nats.CustomInboxPrefix changes it).
func NewTransport(nc *nats.Conn, cluster string, opts ...Option) (*Transport, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if nc == nil {
		return nil, fmt.Errorf("%w: natstransport: nil connection", synod.ErrInvalidConfig)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("natstransport: new transport: %w", err)
	}
	if err := ValidateName("cluster", cluster); err != nil {
		return nil, fmt.Errorf("natstransport: new transport: %w: %w", synod.ErrInvalidConfig, err)
	}
	t := &Transport{
		nc: nc, cluster: cluster, opts: o,
		log:      o.logger.With("cluster", cluster),
		inbox:    nc.NewInbox(),
		pending:  make(map[uint64]*pending),
		subjects: make(map[string][2]string),
	}
	sub, err := nc.Subscribe(t.inbox+".*.*", t.onReply)
	if err != nil {
		return nil, fmt.Errorf("natstransport: new transport: subscribe %s: %w", t.inbox, err)
	}
	t.sub = sub
	return t, nil
}

// Close unsubscribes and forgets every pending request. Calls after Close
// return ErrClosed. It does not close the connection, which is the caller's.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	stops := make([]func() bool, 0, len(t.pending))
	for id, p := range t.pending {
		if p.stop != nil {
			stops = append(stops, p.stop)
		}
		delete(t.pending, id)
	}
	t.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	if err := t.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natstransport: close: %w", err)
	}
	return nil
}

// Pending returns how many requests wait for replies, for tests and metrics.
func (t *Transport) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Prepare implements synod.Transport.
func (t *Transport) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	if err := t.checkRequest(req.Key, req.Ballot, req.Validate(), nil); err != nil {
		return fmt.Errorf("natstransport: prepare: %w", err)
	}
	data, err := EncodePrepareRequest(req)
	if err != nil {
		return err
	}
	p := &pending{ctx: ctx, isPrepare: true, key: req.Key, ballot: req.Ballot, prepares: replies}
	return t.scatter(p, to, data)
}

// Accept implements synod.Transport.
func (t *Transport) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	if err := t.checkRequest(req.Key, req.Next, req.Validate(), req.Value); err != nil {
		return fmt.Errorf("natstransport: accept: %w", err)
	}
	data, err := EncodeAcceptRequest(req)
	if err != nil {
		return err
	}
	p := &pending{ctx: ctx, key: req.Key, ballot: req.Ballot, accepts: replies}
	return t.scatter(p, to, data)
}

// checkRequest applies the limits an acceptor would, so that a request it
// would refuse is not sent. Its errors match synod.ErrInvalidRequest too: the
// request can never succeed.
func (t *Transport) checkRequest(key string, b synod.Ballot, validation error, value []byte) error {
	switch {
	case validation != nil:
		return validation
	case len(key) > MaxKeySize:
		return fmt.Errorf("%w (%w): key of %d bytes, limit %d", ErrTooLarge, synod.ErrInvalidRequest, len(key), MaxKeySize)
	case len(b.Proposer) > MaxIDSize:
		return fmt.Errorf("%w (%w): proposer ID of %d bytes, limit %d", ErrTooLarge, synod.ErrInvalidRequest, len(b.Proposer), MaxIDSize)
	case len(value) > t.opts.limits.maxValue():
		return fmt.Errorf("%w (%w): %q: value of %d bytes, limit %d", ErrTooLarge, synod.ErrInvalidRequest, key, len(value), t.opts.limits.maxValue())
	}
	return nil
}

// scatter registers p and publishes data to every acceptor in to.
func (t *Transport) scatter(p *pending, to []string, data []byte) error {
	if err := p.ctx.Err(); err != nil {
		return fmt.Errorf("natstransport: %s %q: %w", p.op(), p.key, err)
	}
	p.to = uniq(to)
	p.got = make([]bool, len(p.to))
	p.left = len(p.to)
	id := t.nextID.Add(1)

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return fmt.Errorf("natstransport: %s %q: %w", p.op(), p.key, ErrClosed)
	}
	t.pending[id] = p
	t.mu.Unlock()
	stop := context.AfterFunc(p.ctx, func() { t.forget(id) })
	t.mu.Lock()
	if t.pending[id] == p {
		p.stop = stop
	}
	t.mu.Unlock()

	var errs []error
	base := t.inbox + "." + strconv.FormatUint(id, 10) + "."
	for i, acceptor := range p.to {
		subj, err := t.subject(acceptor, p.isPrepare)
		if err == nil {
			err = t.nc.PublishRequest(subj, base+strconv.Itoa(i), data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("acceptor %s: %w", acceptor, err))
		}
	}
	if len(errs) == len(p.to) {
		t.forget(id) // no reply can come
	}
	if len(errs) > 0 {
		return fmt.Errorf("natstransport: %s %q: %w", p.op(), p.key, errors.Join(errs...))
	}
	return nil
}

func (p *pending) op() string {
	if p.isPrepare {
		return opPrepare
	}
	return opAccept
}

// uniq returns to without repeated IDs, keeping the first of each.
func uniq(to []string) []string {
	out := make([]string, 0, len(to))
	for _, id := range to {
		dup := false
		for _, o := range out {
			if o == id {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, id)
		}
	}
	return out
}

// forget drops request id, if it is still pending.
func (t *Transport) forget(id uint64) {
	var stop func() bool
	t.mu.Lock()
	if p := t.pending[id]; p != nil {
		stop = p.stop
		delete(t.pending, id)
	}
	t.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// subject returns the cached subject of an acceptor operation.
func (t *Transport) subject(acceptor string, isPrepare bool) (string, error) {
	t.mu.Lock()
	s, ok := t.subjects[acceptor]
	t.mu.Unlock()
	if !ok {
		prep, acc, err := Subjects(t.opts.prefix, t.cluster, acceptor)
		if err != nil {
			return "", err
		}
		s = [2]string{prep, acc}
		t.mu.Lock()
		t.subjects[acceptor] = s
		t.mu.Unlock()
	}
	if isPrepare {
		return s[0], nil
	}
	return s[1], nil
}

// onReply handles one message on the inbox subscription.
func (t *Transport) onReply(m *nats.Msg) {
	id, idx, ok := t.parseReplySubject(m.Subject)
	if !ok {
		t.log.Debug("natstransport: message on inbox with a foreign subject ignored", "subject", m.Subject)
		return
	}
	t.mu.Lock()
	p := t.pending[id]
	if p == nil || idx >= len(p.to) || p.got[idx] {
		t.mu.Unlock()
		if p != nil {
			t.log.Debug("natstransport: duplicate or unexpected reply ignored", "subject", m.Subject)
		}
		return // late replies to finished requests are normal
	}
	acceptor := p.to[idx]
	t.mu.Unlock()

	// Decide what the message is without the lock; p's fields read here
	// never change after scatter.
	var (
		prep    synod.PrepareReply
		acc     synod.AcceptReply
		deliver bool
	)
	switch err := replyError(acceptor, m); {
	case err != nil && errors.Is(err, synod.ErrStorage):
		// Neither a promise nor a refusal, but the proposal counts it: when
		// too few acceptors are left for a quorum it fails at once with
		// synod.ErrStorage (which the caller sees) instead of waiting.
		t.log.Debug("natstransport: acceptor storage failed", "op", p.op(), "key", p.key, "err", err)
		prep = synod.PrepareReply{From: acceptor, Key: p.key, Ballot: p.ballot, Err: err}
		acc = synod.AcceptReply{From: acceptor, Key: p.key, Ballot: p.ballot, Err: err}
		deliver = true
	case err != nil:
		lvl := slog.LevelWarn
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, ErrStopping) || errors.Is(err, ErrOverloaded) {
			lvl = slog.LevelDebug
		}
		t.log.Log(context.Background(), lvl, "natstransport: no answer from acceptor", "op", p.op(), "key", p.key, "err", err)
	case p.isPrepare:
		rep, err := DecodePrepareReply(m.Data, t.opts.limits)
		if err == nil {
			err = p.check(acceptor, rep.From, rep.Key, rep.Ballot)
		}
		if err != nil {
			t.log.Warn("natstransport: bad prepare reply ignored", "acceptor", acceptor, "err", err)
			return
		}
		prep, deliver = rep, true
	default:
		rep, err := DecodeAcceptReply(m.Data, t.opts.limits)
		if err == nil {
			err = p.check(acceptor, rep.From, rep.Key, rep.Ballot)
		}
		if err != nil {
			t.log.Warn("natstransport: bad accept reply ignored", "acceptor", acceptor, "err", err)
			return
		}
		acc, deliver = rep, true
	}

	t.mu.Lock()
	if t.pending[id] != p || p.got[idx] {
		t.mu.Unlock()
		return
	}
	p.got[idx] = true
	p.left--
	var stop func() bool
	if p.left == 0 {
		delete(t.pending, id)
		stop = p.stop
	}
	t.mu.Unlock()
	if stop != nil {
		stop()
	}
	if !deliver || p.ctx.Err() != nil {
		return
	}
	if p.isPrepare {
		select {
		case p.prepares <- prep:
		default:
			t.log.Debug("natstransport: reply dropped: channel full", "acceptor", acceptor, "key", p.key)
		}
		return
	}
	select {
	case p.accepts <- acc:
	default:
		t.log.Debug("natstransport: reply dropped: channel full", "acceptor", acceptor, "key", p.key)
	}
}

// check matches a decoded reply to the request it answers.
func (p *pending) check(acceptor, from, key string, b synod.Ballot) error {
	switch {
	case from != acceptor:
		return fmt.Errorf("%w: reply from %q on the reply subject of acceptor %q", ErrMalformed, from, acceptor)
	case key != p.key || b != p.ballot:
		return fmt.Errorf("%w: reply for %q at %v, request was %q at %v", ErrMalformed, key, b, p.key, p.ballot)
	}
	return nil
}

// parseReplySubject splits <inbox>.<id>.<index>.
func (t *Transport) parseReplySubject(subj string) (id uint64, idx int, ok bool) {
	rest, found := strings.CutPrefix(subj, t.inbox+".")
	if !found {
		return 0, 0, false
	}
	ids, idxs, found := strings.Cut(rest, ".")
	if !found {
		return 0, 0, false
	}
	id, err := strconv.ParseUint(ids, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	i, err := strconv.ParseUint(idxs, 10, 31)
	if err != nil {
		return 0, 0, false
	}
	return id, int(i), true
}

// replyError returns the error a reply message carries, if any: a micro error
// reply as a *RemoteError, or the server's "no responders" status as an error
// wrapping nats.ErrNoResponders.
func replyError(acceptor string, m *nats.Msg) error {
	if m.Header == nil {
		return nil
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &RemoteError{Acceptor: acceptor, Code: code, Description: m.Header.Get(micro.ErrorHeader)}
	}
	if m.Header.Get(statusHeader) == statusNoResponders && len(m.Data) == 0 {
		return fmt.Errorf("natstransport: acceptor %s: %w", acceptor, nats.ErrNoResponders)
	}
	return nil
}

// PrepareAt sends req to one acceptor and waits for its reply, for tools and
// tests; proposers use Prepare. An error reply comes back as a *RemoteError,
// so errors.Is matches the acceptor's sentinel (ErrStorage,
// synod.ErrInvalidRequest, ...); an acceptor nobody serves gives an error
// wrapping nats.ErrNoResponders.
func (t *Transport) PrepareAt(ctx context.Context, acceptor string, req synod.PrepareRequest) (synod.PrepareReply, error) {
	if err := t.checkRequest(req.Key, req.Ballot, req.Validate(), nil); err != nil {
		return synod.PrepareReply{}, fmt.Errorf("natstransport: prepare: %w", err)
	}
	data, err := EncodePrepareRequest(req)
	if err != nil {
		return synod.PrepareReply{}, err
	}
	m, err := t.request(ctx, acceptor, true, data)
	if err != nil {
		return synod.PrepareReply{}, err
	}
	rep, err := DecodePrepareReply(m.Data, t.opts.limits)
	if err == nil {
		err = (&pending{key: req.Key, ballot: req.Ballot}).check(acceptor, rep.From, rep.Key, rep.Ballot)
	}
	if err != nil {
		return synod.PrepareReply{}, fmt.Errorf("natstransport: prepare %q at %s: %w", req.Key, acceptor, err)
	}
	return rep, nil
}

// AcceptAt sends req to one acceptor and waits for its reply, as PrepareAt.
func (t *Transport) AcceptAt(ctx context.Context, acceptor string, req synod.AcceptRequest) (synod.AcceptReply, error) {
	if err := t.checkRequest(req.Key, req.Next, req.Validate(), req.Value); err != nil {
		return synod.AcceptReply{}, fmt.Errorf("natstransport: accept: %w", err)
	}
	data, err := EncodeAcceptRequest(req)
	if err != nil {
		return synod.AcceptReply{}, err
	}
	m, err := t.request(ctx, acceptor, false, data)
	if err != nil {
		return synod.AcceptReply{}, err
	}
	rep, err := DecodeAcceptReply(m.Data, t.opts.limits)
	if err == nil {
		err = (&pending{key: req.Key, ballot: req.Ballot}).check(acceptor, rep.From, rep.Key, rep.Ballot)
	}
	if err != nil {
		return synod.AcceptReply{}, fmt.Errorf("natstransport: accept %q at %s: %w", req.Key, acceptor, err)
	}
	return rep, nil
}

// request sends one frame to one acceptor through the connection's shared
// request inbox and returns the reply, or the error it carries.
func (t *Transport) request(ctx context.Context, acceptor string, isPrepare bool, data []byte) (*nats.Msg, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	subj, err := t.subject(acceptor, isPrepare)
	if err != nil {
		return nil, err
	}
	m, err := t.nc.RequestWithContext(ctx, subj, data)
	if err != nil {
		return nil, fmt.Errorf("natstransport: request %s: %w", subj, err)
	}
	if err := replyError(acceptor, m); err != nil {
		return nil, err
	}
	return m, nil
}
