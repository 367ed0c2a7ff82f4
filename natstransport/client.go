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

// Transport is the proposer side: a synod.Transport (and synod.Reader) over
// NATS. It is safe for concurrent use.
//
// Requests travel in version-2 frames, batched naturally per acceptor: each
// Prepare, Accept or Read queues one item per acceptor, and an acceptor's
// queue is sent as one frame (up to MaxFrameItems items and the message
// limit) as soon as no earlier frame to that acceptor is in flight (see
// WithFramesInFlight). A lone request therefore leaves at once, and requests
// that arrive while a frame is on its way share the next one: no timer adds
// latency. A frame stays in flight until every item in it has been answered
// or abandoned (its context ended). Each item is sent at most once.
//
// Every frame gets its own reply subject <inbox>.<frame ID>, all under one
// wildcard subscription per Transport, and every item its own sequence
// number. A reply counts only for the acceptor its frame went to and only once
// per item; a reply whose sender, kind, key or ballot does not match is
// ignored. Nothing runs per request: context.AfterFunc abandons a request's
// items when its context ends.
type Transport struct {
	nc      *nats.Conn
	cluster string
	opts    options
	log     *slog.Logger
	inbox   string // reply subjects are inbox.<frame ID>
	// replyPrefix is inbox + ".", the start of every reply subject.
	replyPrefix string
	sub         *nats.Subscription
	status      chan nats.Status // the connection's losses and returns, see watchConnection
	nearby      nearness         // see Near

	mu        sync.Mutex
	closed    bool
	scatters  map[*scatter]struct{} // requests waiting for replies
	items     map[uint64]*item      // by seq: items queued or in flight
	frames    map[uint64]*frame     // by frame ID: frames in flight
	peers     map[string]*peer      // by acceptor ID
	nextSeq   uint64
	nextFrame uint64
}

var (
	_ synod.Transport = (*Transport)(nil)
	_ synod.Reader    = (*Transport)(nil)
	_ synod.Nearness  = (*Transport)(nil)
)

// scatter is one Prepare, Accept or Read: one item per acceptor.
type scatter struct {
	ctx      context.Context
	req      RequestItem // Seq is set per item
	key      string
	ballot   synod.Ballot // zero for a read
	prepares chan<- synod.PrepareReply
	accepts  chan<- synod.AcceptReply
	reads    chan<- synod.ReadReply
	items    []*item
	left     int         // items not done
	stop     func() bool // unregisters the AfterFunc; nil until registered
	done     bool

	// Room for the items of a request to up to five acceptors, so that a
	// request costs one allocation, not one per acceptor.
	itemBuf [5]item
	ptrBuf  [5]*item
}

// item is one scatter's request to one acceptor.
type item struct {
	seq  uint64
	sc   *scatter
	peer *peer
	fr   *frame // nil while queued
	done bool   // answered, abandoned or unsendable
}

// peer is the queue of one acceptor.
type peer struct {
	id       string
	subject  string
	queue    []*item
	inflight int
}

// frame is a frame in flight.
type frame struct {
	id    uint64
	peer  *peer
	items []*item
	open  int // items not done
}

// NewTransport returns a Transport to the acceptors of cluster over nc. The
// connection and its options are the caller's: pass nats.Option values such
// as nats.UserCredentials(file), nats.Nkey or nats.NkeyOptionFromSeed, and
// nats.Secure / nats.RootCAs / nats.ClientCert (TLS) to nats.Connect with a
// comma-separated URL list, and set reconnect options there; after a reconnect
// the Transport's subscription is restored by nats.go. Phases that run while
// the connection is down get no replies and time out, so changes then fail
// with synod.ErrUnavailable or synod.ErrIndeterminate within their deadline.
// When the connection drops, the frames in flight get replies whose Err
// matches synod.ErrReplyLost (their replies cannot come back), so that the
// Client retries through the server nats.go reconnects to at once instead of
// waiting out its phase timeout.
// When an acceptor's own connection drops and comes back, it announces so,
// and its frames in flight get such replies too (see Service.announce).
// A frame to an acceptor that nobody serves (its process is down) gets the
// server's "no responders" answer at once, which the Transport delivers as
// replies whose Err matches synod.ErrNotDelivered, so a change that cannot
// reach a quorum fails fast (synod.ErrUnavailable); this needs a connection
// with headers, which nats.go and nats-server 2.2 or later use by default.
//
// The proposer needs permission to publish to the acceptors' .frame subjects
// and to subscribe to its inbox (_INBOX.> unless nats.CustomInboxPrefix
// changes it).
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
		scatters: make(map[*scatter]struct{}),
		items:    make(map[uint64]*item),
		frames:   make(map[uint64]*frame),
		peers:    make(map[string]*peer),
		nearby:   newNearness(),
	}
	t.replyPrefix = t.inbox + "."
	sub, err := nc.Subscribe(t.inbox+".*", t.onReply)
	if err != nil {
		return nil, fmt.Errorf("natstransport: new transport: subscribe %s: %w", t.inbox, err)
	}
	t.sub = sub
	t.status = nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CONNECTED)
	go t.watchConnection(t.status)
	if o.nearEvery > 0 {
		go t.measureLoop()
	}
	return t, nil
}

// watchConnection ends the frames in flight each time the connection is lost
// (see connectionLost), and measures the acceptors' distances again each time
// it is back (the server, and so which acceptors are near, may have changed),
// until Close removes ch.
func (t *Transport) watchConnection(ch <-chan nats.Status) {
	for st := range ch {
		if st == nats.CONNECTED {
			t.nearby.forget() // measured through the old server
			t.nearby.remeasure()
			continue
		}
		t.connectionLost()
	}
}

// connectionLost answers every item of the frames in flight with a reply
// whose Err matches synod.ErrReplyLost, and frees their acceptors'
// pipelines. Their replies would come back through the server the
// connection just lost, so none will come: without this, each phase waiting
// for them would wait out its timeout, and every later request to those
// acceptors would queue behind their frames. A frame may have reached its
// acceptor and taken effect; the Client treats the reply as no vote, and
// retries at once with a higher ballot, through the server nats.go
// reconnects to. Frames published while the connection is down are kept by
// nats.go and sent after the reconnect; one caught here too only costs its
// phase a retry.
func (t *Transport) connectionLost() {
	if n := t.endFrames("", "connection lost before the reply"); n > 0 {
		t.log.Info("natstransport: connection to the NATS server lost; frames in flight got no reply", "frames", n)
	}
}

// endFrames answers every item of the frames in flight to acceptor (to
// every acceptor if it is "") with a reply whose Err matches
// synod.ErrReplyLost and says why, and returns how many frames it ended.
func (t *Transport) endFrames(acceptor, why string) int {
	t.mu.Lock()
	var frames []*frame
	for _, fr := range t.frames {
		if acceptor == "" || fr.peer.id == acceptor {
			frames = append(frames, fr)
		}
	}
	t.mu.Unlock()
	for _, fr := range frames {
		t.frameFailed(fr, fmt.Errorf("natstransport: acceptor %s: %s: %w", fr.peer.id, why, synod.ErrReplyLost))
	}
	return len(frames)
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
	stops := make([]func() bool, 0, len(t.scatters))
	for sc := range t.scatters {
		sc.done = true
		if sc.stop != nil {
			stops = append(stops, sc.stop)
		}
	}
	clear(t.scatters)
	clear(t.items)
	clear(t.frames)
	clear(t.peers)
	t.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	t.nc.RemoveStatusListener(t.status)
	t.nearby.stop()
	if err := t.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natstransport: close: %w", err)
	}
	return nil
}

// Pending returns how many requests (calls of Prepare, Accept and Read) wait
// for replies, for tests and metrics.
func (t *Transport) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.scatters)
}

// Prepare implements synod.Transport.
func (t *Transport) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	if err := t.checkRequest(req.Key, req.Ballot, req.Validate(), nil); err != nil {
		return fmt.Errorf("natstransport: prepare: %w", err)
	}
	sc := &scatter{ctx: ctx, key: req.Key, ballot: req.Ballot, prepares: replies}
	sc.req.Op, sc.req.Prepare = synod.OpPrepare, req
	return t.scatter(sc, to)
}

// Accept implements synod.Transport.
func (t *Transport) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	if err := t.checkRequest(req.Key, req.Next, req.Validate(), req.Value); err != nil {
		return fmt.Errorf("natstransport: accept: %w", err)
	}
	sc := &scatter{ctx: ctx, key: req.Key, ballot: req.Ballot, accepts: replies}
	sc.req.Op, sc.req.Accept = synod.OpAccept, req
	return t.scatter(sc, to)
}

// Read implements synod.Reader.
func (t *Transport) Read(ctx context.Context, to []string, req synod.ReadRequest, replies chan<- synod.ReadReply) error {
	if err := t.checkRequest(req.Key, synod.Ballot{}, req.Validate(), nil); err != nil {
		return fmt.Errorf("natstransport: read: %w", err)
	}
	sc := &scatter{ctx: ctx, key: req.Key, reads: replies}
	sc.req.Op, sc.req.Read = synod.OpRead, req
	return t.scatter(sc, to)
}

// afterUnlock is work collected under t.mu to do once it is released:
// unregistering AfterFuncs and sending the queues of peers whose frame ended.
type afterUnlock struct {
	stops []func() bool
	peers []*peer
}

// add returns a with what finish returned. (By value: appending through a
// pointer would move the caller's lists to the heap.)
func (a afterUnlock) add(stop func() bool, p *peer) afterUnlock {
	if stop != nil {
		a.stops = append(a.stops, stop)
	}
	if p != nil {
		a.peers = append(a.peers, p)
	}
	return a
}

func (t *Transport) run(a afterUnlock) {
	for _, stop := range a.stops {
		stop()
	}
	for _, p := range a.peers {
		_ = t.flush(p)
	}
}

// scatter queues one item of sc per acceptor in to and sends the queues that
// have no frame in flight.
func (t *Transport) scatter(sc *scatter, to []string) error {
	if err := sc.ctx.Err(); err != nil {
		return fmt.Errorf("natstransport: %v %q: %w", sc.req.Op, sc.key, err)
	}
	var errs []error
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return fmt.Errorf("natstransport: %v %q: %w", sc.req.Op, sc.key, ErrClosed)
	}
	to = uniq(to)
	all := sc.itemBuf[:0]
	sc.items = sc.ptrBuf[:0]
	if len(to) > len(sc.itemBuf) {
		all = make([]item, len(to))
		sc.items = make([]*item, 0, len(to))
	}
	all = all[:len(to)]
	for i, id := range to {
		p, err := t.peer(id)
		if err != nil {
			errs = append(errs, fmt.Errorf("acceptor %s: %w", id, err))
			continue
		}
		t.nextSeq++
		it := &all[i]
		*it = item{seq: t.nextSeq, sc: sc, peer: p}
		sc.items = append(sc.items, it)
		t.items[it.seq] = it
		p.queue = append(p.queue, it)
	}
	sc.left = len(sc.items)
	// Read under the lock: once it is released another flush of the same
	// peer may send these items and their replies decrement sc.left.
	pending := sc.left > 0
	if pending {
		t.scatters[sc] = struct{}{}
	}
	t.mu.Unlock()
	if pending {
		stop := context.AfterFunc(sc.ctx, func() { t.abandon(sc) })
		t.mu.Lock()
		finished := sc.done
		if !finished {
			sc.stop = stop
		}
		t.mu.Unlock()
		if finished {
			stop()
		}
		for _, it := range sc.items {
			if err := t.flush(it.peer); err != nil {
				errs = append(errs, fmt.Errorf("acceptor %s: %w", it.peer.id, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("natstransport: %v %q: %w", sc.req.Op, sc.key, errors.Join(errs...))
	}
	return nil
}

// peer returns the queue of acceptor id, creating it. t.mu is held.
func (t *Transport) peer(id string) (*peer, error) {
	if p := t.peers[id]; p != nil {
		return p, nil
	}
	subj, err := FrameSubject(t.opts.prefix, t.cluster, id)
	if err != nil {
		return nil, err
	}
	p := &peer{id: id, subject: subj}
	t.peers[id] = p
	t.nearby.remeasure()
	return p, nil
}

// flush sends p's queue as one frame if p has room for another frame in
// flight. It reports a failed publish; each item of that frame then gets a
// reply whose Err matches synod.ErrReplyLost.
func (t *Transport) flush(p *peer) error {
	limit := t.opts.limits.maxMessage()
	if mp := int(t.nc.MaxPayload()); mp > 0 && mp < limit {
		limit = mp
	}
	t.mu.Lock()
	if t.closed || p.inflight >= t.opts.framesInFlight || len(p.queue) == 0 {
		t.mu.Unlock()
		return nil
	}
	room := min(len(p.queue), MaxFrameItems)
	var (
		taken = make([]*item, 0, room)
		size  = 16 // frame header
		n     int
	)
	for ; n < len(p.queue) && len(taken) < MaxFrameItems; n++ {
		it := p.queue[n]
		if it.done {
			continue // abandoned while queued
		}
		sz := requestItemSize(&it.sc.req)
		if len(taken) > 0 && size+sz > limit {
			break
		}
		size += sz
		taken = append(taken, it)
	}
	if n == len(p.queue) {
		p.queue = p.queue[:0]
	} else {
		p.queue = append(p.queue[:0], p.queue[n:]...)
	}
	if len(taken) == 0 {
		t.mu.Unlock()
		return nil
	}
	t.nextFrame++
	fr := &frame{id: t.nextFrame, peer: p, items: taken, open: len(taken)}
	for _, it := range taken {
		it.fr = fr
	}
	t.frames[fr.id] = fr
	p.inflight++
	t.mu.Unlock()

	// The items' requests do not change once queued (they are the scatters'),
	// so they are encoded outside the lock, straight into a pooled buffer:
	// PublishRequest copies it into the connection's buffer.
	bp := getBuf(size)
	data := appendRequestFrameHeader(*bp, len(taken))
	var err error
	for _, it := range taken {
		if data, err = appendRequestItem(data, it.seq, &it.sc.req.BatchRequest); err != nil {
			err = fmt.Errorf("natstransport: encode request frame: %w", err)
			break
		}
	}
	if err == nil {
		err = t.nc.PublishRequest(p.subject, t.replySubject(fr.id), data)
	}
	*bp = data
	putBuf(bp)
	if err == nil {
		return nil
	}
	t.log.Debug("natstransport: frame not sent", "acceptor", p.id, "items", len(taken), "err", err)
	// Each item gets a reply saying so: a frame flushed after an earlier one
	// ended (see run) has no caller to return err to, and a request without
	// a reply holds its phase until the phase times out. ErrReplyLost, not
	// ErrNotDelivered: a failed publish is most likely unsent, but nothing
	// here proves that none of it reached the server.
	t.frameFailed(fr, fmt.Errorf("natstransport: acceptor %s: frame not sent (%w): %w", p.id, err, synod.ErrReplyLost))
	return err
}

// finish marks it done: answered, abandoned, or lost with its frame. The
// frame it was in ends once all its items are done, and the request once all
// its items are. t.mu is held. It returns what to do after unlocking (see
// afterUnlock): the AfterFunc to unregister if the request ended, the peer
// to flush if the frame did.
func (t *Transport) finish(it *item) (stop func() bool, p *peer) {
	if it.done {
		return nil, nil
	}
	it.done = true
	if t.items[it.seq] == it {
		delete(t.items, it.seq)
	}
	if fr := it.fr; fr != nil {
		if fr.open--; fr.open == 0 && t.frames[fr.id] == fr {
			delete(t.frames, fr.id)
			fr.peer.inflight--
			p = fr.peer
		}
	}
	sc := it.sc
	if sc.left--; sc.left == 0 && !sc.done {
		sc.done = true
		delete(t.scatters, sc)
		stop = sc.stop
	}
	return stop, p
}

// abandon ends sc when its context is done: its items still queued are not
// sent, and its items in flight no longer hold their frames open.
func (t *Transport) abandon(sc *scatter) {
	// Room on the stack for the usual few entries.
	var (
		stops [16]func() bool
		peers [8]*peer
	)
	a := afterUnlock{stops: stops[:0], peers: peers[:0]}
	t.mu.Lock()
	if !t.closed {
		for _, it := range sc.items {
			a = a.add(t.finish(it))
		}
	}
	t.mu.Unlock()
	t.run(a)
}

// onReply handles one message on the inbox subscription: a reply frame, or an
// error reply to a whole frame.
func (t *Transport) onReply(m *nats.Msg) {
	id, ok := t.parseReplySubject(m.Subject)
	if !ok {
		t.log.Debug("natstransport: message on inbox with a foreign subject ignored", "subject", m.Subject)
		return
	}
	if id == helloFrameID {
		t.onHello(m)
		return
	}
	t.mu.Lock()
	fr := t.frames[id]
	t.mu.Unlock()
	if fr == nil {
		return // late replies to finished frames are normal
	}
	acceptor := fr.peer.id
	if err := replyError(acceptor, m); err != nil {
		t.frameFailed(fr, err)
		return
	}
	// The items are copied into the requests' channels (their values alias
	// m.Data, which nats.go allocated for this message alone), so the slice
	// they are decoded into goes back to the pool.
	ip := replyItemsPool.Get().(*[]ReplyItem)
	defer func() {
		clear(*ip)
		if cap(*ip) <= maxPooledItems {
			replyItemsPool.Put(ip)
		}
	}()
	hints := replyHints{from: acceptor, item: func(i int, seq uint64) (string, string, bool) {
		// fr.items and each item's scatter do not change once the frame is
		// in flight; a reply usually lists the items in the frame's order.
		if i >= len(fr.items) || fr.items[i].seq != seq {
			return "", "", false
		}
		sc := fr.items[i].sc
		return sc.key, sc.ballot.Proposer, true
	}}
	f, err := decodeReplyFrame(m.Data, t.opts.limits, (*ip)[:0], &hints)
	*ip = f.Items
	if err == nil && f.From != acceptor {
		err = fmt.Errorf("%w: reply frame from %q on the reply subject of acceptor %q", ErrMalformed, f.From, acceptor)
	}
	if err != nil {
		t.log.Warn("natstransport: bad reply frame ignored", "acceptor", acceptor, "err", err)
		return
	}
	// Room on the stack for the usual few entries.
	var (
		stops [16]func() bool
		peers [8]*peer
	)
	a := afterUnlock{stops: stops[:0], peers: peers[:0]}
	t.mu.Lock()
	for i := range f.Items {
		ri := &f.Items[i]
		it := t.items[ri.Seq]
		if it == nil || it.fr != fr || it.done {
			continue // a duplicate, or a reply to an abandoned item
		}
		if err := it.sc.match(ri); err != nil {
			t.log.Warn("natstransport: bad reply item ignored", "acceptor", acceptor, "err", err)
			continue
		}
		var rerr error
		if ri.Op == itemError {
			rerr = itemErr(acceptor, it.sc.req.Epoch(), &ri.Error)
			t.logRemote(it.sc, rerr)
		}
		it.sc.deliver(t.log, acceptor, ri, rerr)
		a = a.add(t.finish(it))
	}
	t.mu.Unlock()
	t.run(a)
}

// frameFailed handles an error reply to a whole frame: every item still open
// in it gets err and is done. The acceptor's error replies and the server's
// "no responders" (the frame reached nobody: err matches
// synod.ErrNotDelivered) are delivered as replies with Err.
func (t *Transport) frameFailed(fr *frame, err error) {
	var remote *RemoteError
	isRemote := errors.As(err, &remote) || errors.Is(err, synod.ErrNotDelivered) || errors.Is(err, synod.ErrReplyLost)
	// Room on the stack for the usual few entries.
	var (
		stops [16]func() bool
		peers [8]*peer
	)
	a := afterUnlock{stops: stops[:0], peers: peers[:0]}
	t.mu.Lock()
	if t.frames[fr.id] == fr {
		for i, it := range fr.items {
			if it.done {
				continue
			}
			if i == 0 || isRemote {
				t.logRemote(it.sc, err)
			}
			if isRemote {
				it.sc.deliver(t.log, fr.peer.id, &ReplyItem{}, err)
			}
			a = a.add(t.finish(it))
		}
	}
	t.mu.Unlock()
	t.run(a)
}

// helloFrameID is the frame ID no frame gets (IDs start at 1): an acceptor
// that reconnected to NATS announces itself on <inbox>.0 (see
// Service.announce).
const helloFrameID = 0

// onHello handles an acceptor's announcement that its NATS connection was
// lost and is back: a reply frame with no items, from that acceptor. Requests
// in flight to it when the connection dropped were lost with their replies,
// and nothing else would say so; their phases would wait out their timeout,
// and every later request to that acceptor would queue behind their frames.
// Its frames in flight therefore end with replies matching
// synod.ErrReplyLost, and the Client retries at once. A frame that reached
// the acceptor after the reconnect may be answered still; ending it costs
// its phase one retry.
func (t *Transport) onHello(m *nats.Msg) {
	f, err := DecodeReplyFrame(m.Data, t.opts.limits)
	if err == nil && len(f.Items) > 0 {
		err = fmt.Errorf("%w: announcement with %d items", ErrMalformed, len(f.Items))
	}
	if err != nil {
		t.log.Warn("natstransport: bad acceptor announcement ignored", "err", err)
		return
	}
	if f.From == "" {
		return // endFrames would take it for every acceptor
	}
	if n := t.endFrames(f.From, "its NATS connection was lost with the request"); n > 0 {
		t.log.Info("natstransport: acceptor reconnected to NATS; its frames in flight got no reply", "acceptor", f.From, "frames", n)
	}
}

// logRemote logs an acceptor's refusal to serve a request.
func (t *Transport) logRemote(sc *scatter, err error) {
	lvl := slog.LevelWarn
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, ErrStopping) || errors.Is(err, ErrOverloaded) || errors.Is(err, synod.ErrReplyLost) {
		lvl = slog.LevelDebug
	}
	t.log.Log(context.Background(), lvl, "natstransport: no answer from acceptor", "op", sc.req.Op, "key", sc.key, "err", err)
}

// match checks that a reply item answers sc's request.
func (sc *scatter) match(ri *ReplyItem) error {
	var (
		key    string
		ballot synod.Ballot
	)
	switch ri.Op {
	case itemError:
		return nil
	case synod.OpPrepare:
		key, ballot = ri.Prepare.Key, ri.Prepare.Ballot
	case synod.OpAccept:
		key, ballot = ri.Accept.Key, ri.Accept.Ballot
	case synod.OpRead:
		key = ri.Read.Key
	}
	if ri.Op != sc.req.Op || key != sc.key || ballot != sc.ballot {
		return fmt.Errorf("%w: %v reply for %q at %v, request was %v %q at %v", ErrMalformed, ri.Op, key, ballot, sc.req.Op, sc.key, sc.ballot)
	}
	return nil
}

// deliver passes a reply (or, when err is set, a reply carrying only err) to
// the caller's channel without blocking, unless the request's context ended.
func (sc *scatter) deliver(log *slog.Logger, acceptor string, ri *ReplyItem, err error) {
	if sc.ctx.Err() != nil {
		return
	}
	sent := true
	switch sc.req.Op {
	case synod.OpPrepare:
		r := ri.Prepare
		if err != nil {
			r = synod.PrepareReply{From: acceptor, Key: sc.key, Ballot: sc.ballot, Err: err}
		}
		select {
		case sc.prepares <- r:
		default:
			sent = false
		}
	case synod.OpAccept:
		r := ri.Accept
		if err != nil {
			r = synod.AcceptReply{From: acceptor, Key: sc.key, Ballot: sc.ballot, Err: err}
		}
		select {
		case sc.accepts <- r:
		default:
			sent = false
		}
	case synod.OpRead:
		r := ri.Read
		if err != nil {
			r = synod.ReadReply{From: acceptor, Key: sc.key, Err: err}
		}
		select {
		case sc.reads <- r:
		default:
			sent = false
		}
	}
	if !sent {
		log.Debug("natstransport: reply dropped: channel full", "acceptor", acceptor, "key", sc.key)
	}
}

// replySubject returns the reply subject of frame id: <inbox>.<id>.
func (t *Transport) replySubject(id uint64) string {
	var b [128]byte
	return string(strconv.AppendUint(append(b[:0], t.replyPrefix...), id, 10))
}

// replyItemsPool holds the slices reply frames are decoded into.
var replyItemsPool = sync.Pool{New: func() any { return new([]ReplyItem) }}

// maxPooledItems bounds the capacity of the item slices kept for reuse
// (frames of more items are rare): with up to 128 frame workers each
// holding one, the pools stay within a few MiB.
const maxPooledItems = 128

// bufPool holds the buffers request and reply frames are encoded into.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf is the largest buffer kept for reuse: a frame carrying a
// large value should not pin its buffer.
const maxPooledBuf = 64 << 10

// getBuf returns an empty pooled buffer with room for size bytes.
func getBuf(size int) *[]byte {
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < size {
		*bp = make([]byte, 0, size)
	}
	*bp = (*bp)[:0]
	return bp
}

// putBuf returns bp to the pool, unless it grew too large to keep.
func putBuf(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	poison(*bp)
	bufPool.Put(bp)
}

// poisonPooled makes every buffer returned to a pool be overwritten first,
// so that a test sees at once any value still aliasing one.
var poisonPooled atomic.Bool

// poison overwrites b's whole capacity when poisonPooled is set.
func poison(b []byte) {
	if poisonPooled.Load() {
		b = b[:cap(b)]
		for i := range b {
			b[i] = 0xee
		}
	}
}

// parseReplySubject returns the frame ID of <inbox>.<frame ID>.
func (t *Transport) parseReplySubject(subj string) (uint64, bool) {
	rest, found := strings.CutPrefix(subj, t.replyPrefix)
	if !found {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil
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

// uniq returns to without repeated IDs, keeping the first of each. It
// returns to itself when no ID repeats (the usual case), and never modifies it.
func uniq(to []string) []string {
	dups := false
	for i, id := range to {
		for _, o := range to[:i] {
			if o == id {
				dups = true
			}
		}
	}
	if !dups {
		return to
	}
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

// replyError returns the error a reply message carries, if any: a micro error
// reply as a *RemoteError, or the server's "no responders" status as an error
// wrapping nats.ErrNoResponders and synod.ErrNotDelivered: the server
// delivered the message to no subscriber, so no acceptor will ever see it.
func replyError(acceptor string, m *nats.Msg) error {
	if m.Header == nil {
		return nil
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &RemoteError{Acceptor: acceptor, Code: code, Description: m.Header.Get(micro.ErrorHeader)}
	}
	if m.Header.Get(statusHeader) == statusNoResponders && len(m.Data) == 0 {
		return fmt.Errorf("natstransport: acceptor %s: %w (%w)", acceptor, nats.ErrNoResponders, synod.ErrNotDelivered)
	}
	return nil
}

// checkReply matches a version-1 reply to the request it answers.
func checkReply(acceptor, key string, b synod.Ballot, from, gotKey string, gotBallot synod.Ballot) error {
	switch {
	case from != acceptor:
		return fmt.Errorf("%w: reply from %q on the reply subject of acceptor %q", ErrMalformed, from, acceptor)
	case gotKey != key || gotBallot != b:
		return fmt.Errorf("%w: reply for %q at %v, request was %q at %v", ErrMalformed, gotKey, gotBallot, key, b)
	}
	return nil
}
