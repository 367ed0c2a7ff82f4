package natstransport

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/synod"
)

// frameHandler decodes a request frame and queues it for a frame worker, or
// answers it with an error reply (a frame that does not decode as a whole, a
// probe, a full queue, a stopping service).
func (s *Service) frameHandler(req micro.Request) {
	arrived := time.Now()
	if req.Headers().Get(ProbeHeader) != "" {
		s.metrics.refuse("probe")
		s.log.Warn("natstransport: probed by another instance starting for this acceptor", "subject", req.Subject())
		s.replyError(req, fmt.Errorf("%w: acceptor %s of cluster %s is served by instance %s",
			ErrAlreadyServing, s.acc.ID(), s.cluster, s.svc.Info().ID))
		return
	}
	data := req.Data()
	rb := requestBufsPool.Get().(*requestBufs)
	seqs, reqs, err := decodeRequests(data, s.opts.limits, rb.seqs, rb.reqs)
	rb.seqs, rb.reqs = seqs, reqs
	if err != nil {
		rb.put()
		s.stats.BadRequests.Add(1)
		s.metrics.malformedRequest(opFrame)
		s.log.Warn("natstransport: bad request frame", "subject", req.Subject(), "bytes", len(data), "err", err)
		s.replyError(req, err)
		return
	}
	if req.Reply() == "" {
		s.log.Debug("natstransport: frame without a reply subject dropped", "subject", req.Subject())
		rb.put()
		return
	}
	if len(reqs) == 0 {
		// A Transport measuring its distance (see Transport.Near): the
		// answer owes nothing to the storage or to frames ahead in the
		// queue, so it leaves at once, and the round trip is the network's.
		rb.put()
		s.publish(req.Reply(), s.emptyReply)
		return
	}
	if err := s.enqueueFrame(frameJob{seqs: seqs, reqs: reqs, bufs: rb, reply: req.Reply(), size: len(data), arrived: arrived}); err != nil {
		rb.put()
		s.log.Warn("natstransport: frame refused", "subject", req.Subject(), "items", len(reqs), "err", err)
		s.replyError(req, err)
	}
}

// enqueueFrame hands j to the frame workers without blocking.
func (s *Service) enqueueFrame(j frameJob) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		s.metrics.refuse("stopping")
		return fmt.Errorf("%w: acceptor %s", ErrStopping, s.acc.ID())
	case s.queuedBytes+j.size > s.opts.maxQueueBytes:
		s.stats.Overloaded.Add(uint64(len(j.reqs)))
		s.metrics.refuse("overloaded")
		return fmt.Errorf("%w: acceptor %s has %d bytes queued", ErrOverloaded, s.acc.ID(), s.queuedBytes)
	}
	select {
	case s.frames <- j:
		s.queued += len(j.reqs)
		s.queuedBytes += j.size
		s.noteInboxLocked(j.reply, j.arrived)
		return nil
	default:
		s.stats.Overloaded.Add(uint64(len(j.reqs)))
		s.metrics.refuse("overloaded")
		return fmt.Errorf("%w: acceptor %s: frame queue full", ErrOverloaded, s.acc.ID())
	}
}

// workFrames applies queued frames until the queue is closed.
func (s *Service) workFrames() {
	defer s.workers.Done()
	for j := range s.frames {
		s.processFrame(j)
		s.mu.Lock()
		s.queued -= len(j.reqs)
		s.queuedBytes -= j.size
		s.mu.Unlock()
		j.bufs.put()
	}
}

// requestBufs holds the slices a request frame is decoded into, pooled:
// ApplyBatch does not keep its requests, and what they point to (keys,
// values) is the message's, not the slices'.
type requestBufs struct {
	seqs []uint64
	reqs []synod.BatchRequest
}

var requestBufsPool = sync.Pool{New: func() any { return new(requestBufs) }}

// put returns b to the pool, unless a large frame grew it.
func (b *requestBufs) put() {
	if b == nil {
		return
	}
	clear(b.reqs) // they point into the message
	if cap(b.reqs) > maxPooledItems {
		return
	}
	b.seqs, b.reqs = b.seqs[:0], b.reqs[:0]
	requestBufsPool.Put(b)
}

// processFrame applies a frame's items in one batch (persisting before
// ApplyBatch returns) and publishes their replies.
func (s *Service) processFrame(j frameJob) {
	results := s.acc.ApplyBatch(s.workCtx, j.reqs)
	sc := getReplyScratch()
	defer putReplyScratch(sc)
	replies := slices.Grow(sc.replies[:0], len(results))[:len(results)]
	sc.replies = replies
	// One clock read for the frame: its items arrived and leave together.
	elapsed := time.Since(j.arrived).Seconds()
	for i, res := range results {
		ri := &replies[i]
		*ri = ReplyItem{Seq: j.seqs[i]}
		op := res.Op.String()
		if res.Err != nil {
			ri.Error = itemErrorOf(res.Err)
			if errors.Is(res.Err, synod.ErrInvalidRequest) {
				s.stats.BadRequests.Add(1)
				s.metrics.malformedRequest(op)
				s.rlog.Log(slog.LevelWarn, op+" "+ri.Error.Code, "natstransport: bad request in frame", "op", op, "err", res.Err)
				continue
			}
			s.countFailure(ri.Error.Code)
			s.rlog.Log(slog.LevelError, op+" "+ri.Error.Code, "natstransport: request failed", "op", op, "code", ri.Error.Code, "err", res.Err)
		} else {
			s.stats.Handled.Add(1)
			ri.Op, ri.Prepare, ri.Accept, ri.Read = res.Op, res.Prepare, res.Accept, res.Read
		}
		ok := res.Prepare.OK || res.Accept.OK || res.Op == synod.OpRead
		// Recorded before the reply leaves, as for version-1 requests.
		s.metrics.requestTook(op, elapsed, ok, res.Err)
	}
	s.publishReplies(j.reply, replies, sc)
}

// replyScratch is the memory a frame worker needs to answer a frame, pooled:
// nothing in it outlives processFrame (nats.go copies what it publishes, and
// the replies' values belong to the acceptor's results, not to the scratch).
type replyScratch struct {
	replies []ReplyItem
	buf     []byte // the encoded items
	msg     []byte // one reply frame
	ends    []int  // end offset of each encoded item in buf
}

var replyScratchPool = sync.Pool{New: func() any { return new(replyScratch) }}

func getReplyScratch() *replyScratch { return replyScratchPool.Get().(*replyScratch) }

// putReplyScratch returns sc to the pool, unless a large frame grew it.
func putReplyScratch(sc *replyScratch) {
	clear(sc.replies) // they point into the acceptor's values
	if cap(sc.replies) > maxPooledItems || cap(sc.buf) > maxPooledBuf || cap(sc.msg) > maxPooledBuf {
		return
	}
	poison(sc.buf)
	poison(sc.msg)
	replyScratchPool.Put(sc)
}

// itemErrorOf returns the error item for err.
func itemErrorOf(err error) ItemError {
	return ItemError{Code: errorCode(err), Message: describe(err), Detail: errorDetail(err)}
}

// publishReplies publishes replies in as few reply frames as the message
// limit (the smaller of Limits.MaxMessage and the server's max_payload)
// allows: one, unless the replies carry large values. A reply too large for
// any frame is replaced by an error item with CodeTooLarge. It encodes into
// sc's buffers.
func (s *Service) publishReplies(subject string, replies []ReplyItem, sc *replyScratch) {
	limit := s.opts.limits.maxMessage()
	if mp := int(s.nc.MaxPayload()); mp > 0 && mp < limit {
		limit = mp
	}
	// Frame header: array, version, from, item array header.
	header := 1 + 1 + 5 + len(s.acc.ID()) + 5
	buf, ends := sc.buf[:0], sc.ends[:0]
	for i := range replies {
		var err error
		before := len(buf)
		buf, err = appendReplyItem(buf, &replies[i])
		if err == nil && header+len(buf)-before > limit {
			err = fmt.Errorf("%w: reply of %d bytes, message limit %d", ErrTooLarge, len(buf)-before, limit)
		}
		if err != nil {
			buf = buf[:before]
			replies[i] = ReplyItem{Seq: replies[i].Seq, Error: itemErrorOf(err)}
			buf, _ = appendReplyItem(buf, &replies[i])
		}
		ends = append(ends, len(buf))
	}
	sc.buf, sc.ends = buf, ends
	if len(replies) == 0 {
		msg, _ := EncodeReplyFrame(s.acc.ID(), nil)
		s.publish(subject, msg)
		return
	}
	first, lo := 0, 0
	for i := range replies {
		last := i == len(replies)-1
		size := header + ends[i] - lo
		if !last && size+ends[i+1]-ends[i] <= limit && i+1-first < MaxFrameItems {
			continue
		}
		msg := appendArrayLen(sc.msg[:0], replyFrameFields)
		msg = appendUint(msg, WireVersion)
		msg = appendStr(msg, s.acc.ID())
		msg = appendArrayLen(msg, i+1-first)
		msg = append(msg, buf[lo:ends[i]]...)
		s.publish(subject, msg)
		sc.msg = msg
		first, lo = i+1, ends[i]
	}
}

// publish sends one reply frame.
func (s *Service) publish(subject string, msg []byte) {
	if err := s.nc.Publish(subject, msg); err != nil {
		s.stats.ReplyErrors.Add(1)
		s.log.Debug("natstransport: reply frame not sent", "reply", subject, "err", err)
	}
}

// Announcements after a reconnect (see announce).
const (
	// inboxWindow is how long after its last frame a proposer's inbox
	// still gets announcements: far longer than any request stays in
	// flight, so a proposer that sent its last frame just before the
	// connection dropped is told.
	inboxWindow = 10 * time.Minute
	// maxInboxes bounds the inboxes remembered; beyond it, new ones are
	// not (their proposers wait out their phase timeout, as before).
	maxInboxes = 4096
)

// noteInboxLocked remembers the inbox of reply, a Transport's reply subject
// <inbox>.<frame ID>, as seen at now. Other reply subjects (a caller's own
// request-reply) are not remembered: an announcement means nothing to them.
// s.mu is held.
func (s *Service) noteInboxLocked(reply string, now time.Time) {
	i := strings.LastIndexByte(reply, '.')
	if i <= 0 {
		return
	}
	// A frame ID, as Transport.parseReplySubject reads it.
	if _, err := strconv.ParseUint(reply[i+1:], 10, 64); err != nil {
		return
	}
	inbox := reply[:i]
	if _, ok := s.inboxes[inbox]; !ok && len(s.inboxes) >= maxInboxes {
		s.forgetInboxesLocked(now)
		if len(s.inboxes) >= maxInboxes {
			return
		}
	}
	s.inboxes[inbox] = now
}

// forgetInboxesLocked forgets the inboxes not seen within inboxWindow of
// now. s.mu is held.
func (s *Service) forgetInboxesLocked(now time.Time) {
	for inbox, at := range s.inboxes {
		if now.Sub(at) > inboxWindow {
			delete(s.inboxes, inbox)
		}
	}
}

// watchReconnects announces the acceptor each time its connection is back.
func (s *Service) watchReconnects(ch <-chan nats.Status) {
	for range ch {
		s.announce()
	}
}

// announce tells every proposer Transport that sent a frame within
// inboxWindow that this acceptor's NATS connection was lost and is back: a
// reply frame from this acceptor with no items, on frame ID 0 of its inbox,
// which no frame has. Frames that were on their way to the acceptor, and
// replies that were on their way back, when the connection dropped were lost
// with no answer to say so; the Transports end their frames in flight to
// this acceptor (synod.ErrReplyLost), so the phases that sent them retry at
// once. nats.go reports the reconnect while it holds the connection's lock,
// which it releases only after it has sent the subscriptions again; this
// publish needs that lock and so goes after them, and the retries find the
// acceptor. A Transport of an earlier release ignores the announcement (no
// frame of its has ID 0).
func (s *Service) announce() {
	now := time.Now()
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.forgetInboxesLocked(now)
	inboxes := make([]string, 0, len(s.inboxes))
	for inbox := range s.inboxes {
		inboxes = append(inboxes, inbox)
	}
	s.mu.Unlock()
	if len(inboxes) == 0 {
		return
	}
	for _, inbox := range inboxes {
		s.publish(inbox+"."+strconv.Itoa(helloFrameID), s.emptyReply)
	}
	s.log.Info("natstransport: NATS connection back; told the proposers that requests in flight may be lost", "proposers", len(inboxes))
}
