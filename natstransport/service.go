package natstransport

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/internal/ratelog"
	"github.com/protosynod/protosynod/synod"
)

// Service identity in the NATS micro framework: `nats micro ls` lists every
// acceptor under ServiceName, and `nats micro info` shows the metadata keys.
const (
	// ServiceName is the micro service name of every acceptor.
	ServiceName = "synod-acceptor"
	// ServiceVersion is the micro service version.
	ServiceVersion = "0.1.0"

	// MetadataCluster, MetadataAcceptor, MetadataPrefix and MetadataWire are
	// the service metadata keys: cluster name, acceptor ID, subject prefix and
	// wire version.
	MetadataCluster  = "cluster"
	MetadataAcceptor = "acceptor"
	MetadataPrefix   = "prefix"
	MetadataWire     = "wire_version"

	// ProbeHeader marks a probe: a request on an acceptor's subject that a
	// running Service answers with an error reply with CodeAlreadyServing
	// instead of handling it. Serve probes before it subscribes.
	ProbeHeader = "Synod-Probe"
)

// flushTimeout bounds the flushes of Serve and Stop.
const flushTimeout = 2 * time.Second

// Service serves one synod.Acceptor over NATS as a micro service with three
// endpoints: frame (version-2 batches, what proposers send) and prepare and
// accept (version-1 single requests, kept for proposers of the previous
// release). Create it with Serve and stop it with Stop.
type Service struct {
	nc      *nats.Conn
	acc     *synod.Acceptor
	cluster string
	opts    options
	log     *slog.Logger
	svc     micro.Service
	prepare string // subject
	accept  string // subject
	inspect string // subject
	admin   string // subject
	frame   string // subject

	// emptyReply is the reply frame with no items from this acceptor: the
	// answer to an empty request frame (a Transport measuring its
	// distance) and the announcement after a reconnect.
	emptyReply []byte

	seed       maphash.Seed
	queues     []chan job
	frames     chan frameJob
	workCtx    context.Context
	cancelWork context.CancelFunc
	workers    sync.WaitGroup
	done       chan struct{} // closed when every worker has returned

	mu          sync.Mutex // guards stopping, queued, queuedBytes, inboxes and sends on queues
	stopping    bool
	queued      int
	queuedBytes int
	// inboxes are the reply inboxes of the proposer Transports that sent
	// frames lately, with when each last did: the ones an announcement
	// after a reconnect goes to (see announce).
	inboxes map[string]time.Time
	status  chan nats.Status // the connection's reconnects, see watchReconnects

	stopOnce sync.Once
	stopErr  error

	stats   serviceStats
	metrics *serviceMetrics
	// Failed, bad and refused requests: one line per cause per second, so a
	// flood of garbage or of load is not a flood of logs.
	rlog *ratelog.Logger
}

// failureLogInterval is how often a Service logs one cause of failed requests
// (with the count of those it did not log).
const failureLogInterval = time.Second

// serviceStats are counters shown as the endpoints' data in micro STATS.
type serviceStats struct {
	Handled       atomic.Uint64
	BadRequests   atomic.Uint64
	Overloaded    atomic.Uint64
	StorageErrors atomic.Uint64
	NoSpace       atomic.Uint64
	ReplyErrors   atomic.Uint64
}

// StatsData is the service-wide data each endpoint reports in micro STATS
// (`nats micro stats synod-acceptor`).
type StatsData struct {
	Handled       uint64 `json:"handled"`        // requests applied and answered
	BadRequests   uint64 `json:"bad_requests"`   // frames that failed to decode or validate
	Overloaded    uint64 `json:"overloaded"`     // requests refused because the queue was full
	StorageErrors uint64 `json:"storage_errors"` // requests the acceptor failed (codes 500 and 507)
	NoSpace       uint64 `json:"no_space"`       // of those, refused for lack of disk space (507)
	ReplyErrors   uint64 `json:"reply_errors"`   // replies that could not be published
	QueuedBytes   int    `json:"queued_bytes"`   // frames waiting or in progress now
}

// frameJob is a decoded request frame waiting for a frame worker.
type frameJob struct {
	seqs    []uint64             // each request's sequence number
	reqs    []synod.BatchRequest // the requests, as ApplyBatch takes them
	bufs    *requestBufs         // where seqs and reqs live, pooled
	reply   string
	size    int
	arrived time.Time
}

type job struct {
	isPrepare bool
	prepare   synod.PrepareRequest
	accept    synod.AcceptRequest
	reply     string
	size      int
	arrived   time.Time
}

// op names j's operation, as in the subjects.
func (j job) op() string {
	if j.isPrepare {
		return opPrepare
	}
	return opAccept
}

// Serve starts serving acc as acceptor acc.ID() of cluster over nc, on the
// subjects <prefix>.<cluster>.<id>.frame, .prepare and .accept (see
// FrameSubject and Subjects).
//
// Before it subscribes, Serve probes those subjects: if anything answers, or
// something subscribes but leaves three probes in a row unanswered for the
// probe timeout each (see WithProbeTimeout), another instance may be serving
// the same acceptor ID, which would silently break quorum intersection, so
// Serve refuses with an error wrapping ErrAlreadyServing. Only NATS's "no
// responders" answer lets it start. (Two instances starting at the same
// moment can both pass the probe; the data directory's identity and lock are
// the other guards.)
//
// When its connection comes back after a loss, the Service tells the
// proposers that sent it frames in the last ten minutes (see announce), so
// that those whose requests were lost with the connection retry at once
// rather than wait out their phase timeout.
//
// Handlers decode each message on the subscription's goroutine and reply at
// once to bad input with an error reply (see the Code constants). A request
// frame goes to one of the frame workers, which applies all its items with
// one synod.Acceptor.ApplyBatch (one storage batch, one sync) and publishes one
// reply frame (more only if the replies exceed the message limit). A
// version-1 request goes to a worker chosen by a hash of its key, which
// applies it (the Acceptor persists before it returns) and then publishes the
// reply; one slow write therefore holds up only the keys that share its
// worker. ctx bounds the probe only.
//
// The connection's options (URLs, credentials, TLS, reconnects) are the
// caller's. The acceptor needs permission to subscribe to its three subjects and
// to $SRV.> (micro's PING, INFO and STATS), and to publish to reply subjects
// (_INBOX.> by default) for replies and for the probe.
func Serve(ctx context.Context, nc *nats.Conn, cluster string, acc *synod.Acceptor, opts ...Option) (*Service, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if nc == nil || acc == nil {
		return nil, fmt.Errorf("%w: natstransport: serve: nil connection or acceptor", synod.ErrInvalidConfig)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("natstransport: serve: %w", err)
	}
	prep, accept, err := Subjects(o.prefix, cluster, acc.ID())
	var frame string
	if err == nil {
		frame, err = FrameSubject(o.prefix, cluster, acc.ID())
	}
	if err != nil {
		return nil, fmt.Errorf("natstransport: serve: %w: %w", synod.ErrInvalidConfig, err)
	}
	s := &Service{
		nc: nc, acc: acc, cluster: cluster, opts: o, prepare: prep, accept: accept, frame: frame,
		inspect: strings.TrimSuffix(prep, opPrepare) + opInspect,
		admin:   strings.TrimSuffix(prep, opPrepare) + opAdmin,
		log:     o.logger.With("acceptor", acc.ID(), "cluster", cluster),
		seed:    maphash.MakeSeed(),
		done:    make(chan struct{}),
		inboxes: make(map[string]time.Time),
	}
	if s.emptyReply, err = EncodeReplyFrame(acc.ID(), nil); err != nil {
		return nil, fmt.Errorf("natstransport: serve: %w", err)
	}
	s.rlog = ratelog.New(s.log, failureLogInterval)
	if s.metrics, err = newServiceMetrics(o.meterProvider, s); err != nil {
		return nil, fmt.Errorf("natstransport: serve: %w", err)
	}
	if err := s.probeAll(ctx); err != nil {
		s.metrics.close()
		return nil, err
	}
	s.workCtx, s.cancelWork = context.WithCancel(context.Background())
	s.queues = make([]chan job, o.workers)
	for i := range s.queues {
		s.queues[i] = make(chan job, o.queueLen)
		s.workers.Add(1)
		go s.work(s.queues[i])
	}
	s.frames = make(chan frameJob, o.queueLen*o.workers)
	for range o.workers {
		s.workers.Add(1)
		go s.workFrames()
	}
	go func() {
		s.workers.Wait()
		close(s.done)
	}()
	err = s.start()
	if err == nil {
		// Make sure the server has the subscriptions before Serve returns.
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		err = s.nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			_ = s.svc.Stop()
			err = fmt.Errorf("natstransport: serve: flush subscriptions: %w", err)
		}
	}
	if err != nil {
		s.closeQueues()
		s.cancelWork()
		<-s.done
		s.metrics.close()
		return nil, err
	}
	s.status = nc.StatusChanged(nats.CONNECTED)
	go s.watchReconnects(s.status)
	s.log.Info("natstransport: acceptor serving", "frame", frame, "prepare", prep, "accept", accept, "instance", s.svc.Info().ID)
	if cfg, err := acc.Config(ctx); err == nil {
		s.warnIfRetired(cfg)
	}
	return s, nil
}

// Probe checks, as Serve does before it subscribes, that no instance of
// acceptor id of cluster answers on its subjects: it returns nil when NATS
// answers "no responders" on each, and otherwise an error wrapping
// ErrAlreadyServing (or the connection's error). Serve probes anyway; call
// Probe first to claim nothing that only a serving acceptor may claim, such
// as a data directory, before knowing the acceptor may serve. Options as for
// Serve (prefix, probe timeout, logger).
func Probe(ctx context.Context, nc *nats.Conn, cluster, id string, opts ...Option) error {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if nc == nil {
		return fmt.Errorf("%w: natstransport: probe: nil connection", synod.ErrInvalidConfig)
	}
	if err := o.validate(); err != nil {
		return wrapf(err, "probe")
	}
	prep, accept, err := Subjects(o.prefix, cluster, id)
	var frame string
	if err == nil {
		frame, err = FrameSubject(o.prefix, cluster, id)
	}
	if err != nil {
		return fmt.Errorf("natstransport: probe: %w: %w", synod.ErrInvalidConfig, err)
	}
	s := &Service{nc: nc, opts: o, prepare: prep, accept: accept, frame: frame, log: o.logger.With("acceptor", id, "cluster", cluster)}
	return s.probeAll(ctx)
}

// probeAll probes every subject the service will subscribe to.
func (s *Service) probeAll(ctx context.Context) error {
	for _, subj := range []string{s.frame, s.prepare, s.accept} {
		if err := s.probe(ctx, subj); err != nil {
			return err
		}
	}
	return nil
}

// probeAttempts is how many probes in a row must time out before Serve takes
// the silence for a paused instance rather than a slow network.
const probeAttempts = 3

// probe fails if anything answers on subj, or subscribes without answering
// probeAttempts probes in a row.
func (s *Service) probe(ctx context.Context, subj string) error {
	for attempt := 1; ; attempt++ {
		err := s.probeOnce(ctx, subj)
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return err
		}
		// A probe the server refused to deliver (or whose reply it refused)
		// also goes unanswered; say so rather than blame another instance.
		if last := s.nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) {
			return fmt.Errorf("natstransport: serve: probe %s unanswered after %v: %w (an acceptor needs to publish and "+
				"subscribe on its own subjects and to subscribe to _INBOX.> and publish to reply subjects)", subj, s.opts.probeTimeout, last)
		}
		if attempt == probeAttempts {
			return fmt.Errorf("%w: %s has a subscriber that did not answer %d probes of %v each (a paused instance?)",
				ErrAlreadyServing, subj, probeAttempts, s.opts.probeTimeout)
		}
		s.log.Warn("natstransport: probe unanswered; probing again", "subject", subj, "timeout", s.opts.probeTimeout)
	}
}

// probeOnce sends one probe: nil means NATS answered "no responders".
func (s *Service) probeOnce(ctx context.Context, subj string) error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("natstransport: serve: probe %s: not connected (status %v)", subj, s.nc.Status())
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.probeTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: subj, Header: nats.Header{ProbeHeader: []string{"1"}}}
	resp, err := s.nc.RequestMsgWithContext(pctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil
	case err == nil:
		// The running instance's description starts with ErrAlreadyServing's
		// text too: say it once.
		desc := strings.TrimPrefix(resp.Header.Get(micro.ErrorHeader), ErrAlreadyServing.Error()+": ")
		if desc == "" {
			desc = fmt.Sprintf("an unknown responder sent %d bytes", len(resp.Data))
		}
		return fmt.Errorf("%w: %s answered a probe: %s", ErrAlreadyServing, subj, desc)
	}
	return fmt.Errorf("natstransport: serve: probe %s: %w", subj, err)
}

// start adds the micro service and its endpoints.
func (s *Service) start() error {
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "CASPaxos acceptor " + s.acc.ID() + " of cluster " + s.cluster,
		Metadata: map[string]string{
			MetadataCluster:  s.cluster,
			MetadataAcceptor: s.acc.ID(),
			MetadataPrefix:   s.opts.prefix,
			MetadataWire:     strconv.Itoa(WireVersion),
		},
		// Every instance must see every request: a queue group would balance
		// requests between two instances of one acceptor ID and hide them.
		QueueGroupDisabled: true,
		StatsHandler:       func(*micro.Endpoint) any { return s.Stats() },
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			s.log.Error("natstransport: service error", "subject", err.Subject, "err", err.Description)
		},
	})
	if err != nil {
		return fmt.Errorf("natstransport: serve: add micro service: %w", err)
	}
	s.svc = svc
	for _, ep := range []struct {
		name, subj string
		h          micro.HandlerFunc
	}{
		{opFrame, s.frame, s.frameHandler},
		{opPrepare, s.prepare, s.handler(true)},
		{opAccept, s.accept, s.handler(false)},
	} {
		err := svc.AddEndpoint(ep.name, ep.h, micro.WithEndpointSubject(ep.subj))
		if err != nil {
			_ = svc.Stop()
			return fmt.Errorf("natstransport: serve: add endpoint %s: %w", ep.subj, err)
		}
	}
	for _, ep := range []struct {
		name, subj string
		h          micro.HandlerFunc
	}{
		{opInspect, s.inspect, s.handleInspect},
		{opAdmin, s.admin, s.handleAdmin},
	} {
		if err := svc.AddEndpoint(ep.name, ep.h, micro.WithEndpointSubject(ep.subj)); err != nil {
			_ = svc.Stop()
			return fmt.Errorf("natstransport: serve: add endpoint %s: %w", ep.subj, err)
		}
	}
	return nil
}

// Subjects returns the prepare and accept subjects the service answers on.
func (s *Service) Subjects() (prepare, accept string) { return s.prepare, s.accept }

// FrameSubject returns the subject of the service's version-2 frames.
func (s *Service) FrameSubject() string { return s.frame }

// Info returns the micro service's info, as `nats micro info` shows it.
func (s *Service) Info() micro.Info { return s.svc.Info() }

// Stats returns the service-wide counters.
func (s *Service) Stats() StatsData {
	s.mu.Lock()
	q := s.queuedBytes
	s.mu.Unlock()
	return StatsData{
		Handled:       s.stats.Handled.Load(),
		BadRequests:   s.stats.BadRequests.Load(),
		Overloaded:    s.stats.Overloaded.Load(),
		StorageErrors: s.stats.StorageErrors.Load(),
		NoSpace:       s.stats.NoSpace.Load(),
		ReplyErrors:   s.stats.ReplyErrors.Load(),
		QueuedBytes:   q,
	}
}

// handler decodes a request and queues it, or replies with an error.
func (s *Service) handler(isPrepare bool) micro.HandlerFunc {
	op := opAccept
	if isPrepare {
		op = opPrepare
	}
	return func(req micro.Request) {
		arrived := time.Now()
		if req.Headers().Get(ProbeHeader) != "" {
			s.metrics.refuse("probe")
			s.log.Warn("natstransport: probed by another instance starting for this acceptor", "subject", req.Subject())
			s.replyError(req, fmt.Errorf("%w: acceptor %s of cluster %s is served by instance %s",
				ErrAlreadyServing, s.acc.ID(), s.cluster, s.svc.Info().ID))
			return
		}
		data := req.Data()
		j := job{isPrepare: isPrepare, reply: req.Reply(), size: len(data), arrived: arrived}
		var err error
		if isPrepare {
			j.prepare, err = DecodePrepareRequest(data, s.opts.limits)
		} else {
			j.accept, err = DecodeAcceptRequest(data, s.opts.limits)
		}
		if err != nil {
			s.stats.BadRequests.Add(1)
			s.metrics.malformedRequest(op)
			s.rlog.Log(slog.LevelWarn, "bad "+op, "natstransport: bad request", "subject", req.Subject(), "bytes", len(data), "err", err)
			s.replyError(req, err)
			return
		}
		if j.reply == "" {
			s.log.Debug("natstransport: request without a reply subject dropped", "subject", req.Subject())
			return
		}
		if err := s.enqueue(j); err != nil {
			s.rlog.Log(slog.LevelWarn, "refused "+errorCode(err), "natstransport: request refused", "subject", req.Subject(), "err", err)
			s.replyError(req, err)
		}
	}
}

// replyError answers req on the subscription's goroutine, which is where
// micro allows it.
func (s *Service) replyError(req micro.Request, err error) {
	if req.Reply() == "" {
		return
	}
	code, desc := errorCode(err), describe(err)
	body, _ := EncodeErrorReply(ErrorReply{Code: code, Message: desc})
	if rerr := req.Error(code, desc, body); rerr != nil {
		s.stats.ReplyErrors.Add(1)
		s.log.Debug("natstransport: error reply not sent", "subject", req.Subject(), "err", rerr)
	}
}

// describe makes err's text fit a header: no control characters, bounded.
func describe(err error) string {
	d := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, err.Error())
	if len(d) > maxMessageSize {
		d = strings.ToValidUTF8(d[:maxMessageSize], "")
	}
	return d
}

// worker returns the index of key's worker.
func (s *Service) worker(key string) int {
	return int(maphash.String(s.seed, key) % uint64(len(s.queues)))
}

// enqueue hands j to its key's worker without blocking.
func (s *Service) enqueue(j job) error {
	key := j.accept.Key
	if j.isPrepare {
		key = j.prepare.Key
	}
	q := s.queues[s.worker(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		s.metrics.refuse("stopping")
		return fmt.Errorf("%w: acceptor %s", ErrStopping, s.acc.ID())
	case s.queuedBytes+j.size > s.opts.maxQueueBytes:
		s.stats.Overloaded.Add(1)
		s.metrics.refuse("overloaded")
		return fmt.Errorf("%w: acceptor %s has %d bytes queued", ErrOverloaded, s.acc.ID(), s.queuedBytes)
	}
	select {
	case q <- j:
		s.queued++
		s.queuedBytes += j.size
		return nil
	default:
		s.stats.Overloaded.Add(1)
		s.metrics.refuse("overloaded")
		return fmt.Errorf("%w: acceptor %s: worker queue full", ErrOverloaded, s.acc.ID())
	}
}

// work applies the requests of one queue in order until it is closed.
func (s *Service) work(q <-chan job) {
	defer s.workers.Done()
	for j := range q {
		s.process(j)
		s.mu.Lock()
		s.queued--
		s.queuedBytes -= j.size
		s.mu.Unlock()
	}
}

// process applies j (persisting before the acceptor returns) and publishes
// the reply.
func (s *Service) process(j job) {
	var (
		data []byte
		ok   bool
		err  error
	)
	if j.isPrepare {
		var rep synod.PrepareReply
		if rep, err = s.acc.Prepare(s.workCtx, j.prepare); err == nil {
			ok = rep.OK
			data, err = EncodePrepareReply(rep)
		}
	} else {
		var rep synod.AcceptReply
		if rep, err = s.acc.Accept(s.workCtx, j.accept); err == nil {
			ok = rep.OK
			data, err = EncodeAcceptReply(rep)
		}
	}
	msg := &nats.Msg{Subject: j.reply, Data: data}
	if err != nil {
		code, desc := errorCode(err), describe(err)
		s.countFailure(code)
		op := opAccept
		if j.isPrepare {
			op = opPrepare
		}
		s.rlog.Log(slog.LevelError, op+" "+code, "natstransport: request failed", "op", op, "code", code, "err", err)
		msg.Data, _ = EncodeErrorReply(ErrorReply{Code: code, Message: desc})
		msg.Header = nats.Header{micro.ErrorHeader: []string{desc}, micro.ErrorCodeHeader: []string{code}}
	} else {
		s.stats.Handled.Add(1)
	}
	// Recorded before the reply leaves, so a client that has its reply sees
	// the request counted (publishing only buffers the message).
	s.metrics.request(j.op(), j.arrived, ok, err)
	if err := s.nc.PublishMsg(msg); err != nil {
		s.stats.ReplyErrors.Add(1)
		s.log.Debug("natstransport: reply not sent", "reply", j.reply, "err", err)
	}
}

// countFailure counts a request the acceptor failed with code.
func (s *Service) countFailure(code string) {
	switch code {
	case CodeNoSpace:
		s.stats.NoSpace.Add(1)
		s.stats.StorageErrors.Add(1)
	case CodeStorage:
		s.stats.StorageErrors.Add(1)
	}
}

// closeQueues stops taking requests and lets the workers finish the queued ones.
func (s *Service) closeQueues() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	s.stopping = true
	for _, q := range s.queues {
		close(q)
	}
	close(s.frames)
}

// Stop stops taking requests (later ones get an error reply with
// CodeStopping), removes the service's subscriptions, and waits until every
// request taken has been applied and answered. If ctx ends first, Stop cancels
// the storage calls still running and returns ctx's error; they still finish
// in the background. Stop is idempotent; calls after the first wait as it does.
// Close the storage only after Stop returned nil.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.nc.RemoveStatusListener(s.status)
		s.closeQueues()
		if err := s.svc.Stop(); err != nil {
			s.stopErr = fmt.Errorf("natstransport: stop micro service: %w", err)
		}
		s.log.Info("natstransport: acceptor stopping; finishing requests in progress")
	})
	defer s.metrics.close()
	defer s.rlog.Flush()
	select {
	case <-s.done:
		s.cancelWork()
		s.flush(ctx)
		return s.stopErr
	case <-ctx.Done():
		s.cancelWork()
		return fmt.Errorf("natstransport: stop acceptor %s: requests still in progress: %w", s.acc.ID(), ctx.Err())
	}
}

// flush pushes the last replies to the server, best effort.
func (s *Service) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout) // nats.go's flush needs a deadline
	defer cancel()
	if s.nc.IsConnected() {
		if err := s.nc.FlushWithContext(ctx); err != nil {
			s.log.Debug("natstransport: flush after stop", "err", err)
		}
	}
}
