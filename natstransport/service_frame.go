package natstransport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

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
	items, err := DecodeRequestFrame(data, s.opts.limits)
	if err != nil {
		s.stats.BadRequests.Add(1)
		s.metrics.malformedRequest(opFrame)
		s.log.Warn("natstransport: bad request frame", "subject", req.Subject(), "bytes", len(data), "err", err)
		s.replyError(req, err)
		return
	}
	if req.Reply() == "" {
		s.log.Debug("natstransport: frame without a reply subject dropped", "subject", req.Subject())
		return
	}
	if err := s.enqueueFrame(frameJob{items: items, reply: req.Reply(), size: len(data), arrived: arrived}); err != nil {
		s.log.Warn("natstransport: frame refused", "subject", req.Subject(), "items", len(items), "err", err)
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
		s.stats.Overloaded.Add(uint64(len(j.items)))
		s.metrics.refuse("overloaded")
		return fmt.Errorf("%w: acceptor %s has %d bytes queued", ErrOverloaded, s.acc.ID(), s.queuedBytes)
	}
	select {
	case s.frames <- j:
		s.queued += len(j.items)
		s.queuedBytes += j.size
		return nil
	default:
		s.stats.Overloaded.Add(uint64(len(j.items)))
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
		s.queued -= len(j.items)
		s.queuedBytes -= j.size
		s.mu.Unlock()
	}
}

// processFrame applies a frame's items in one batch (persisting before
// ApplyBatch returns) and publishes their replies.
func (s *Service) processFrame(j frameJob) {
	reqs := make([]synod.BatchRequest, len(j.items))
	for i := range j.items {
		reqs[i] = j.items[i].BatchRequest
	}
	results := s.acc.ApplyBatch(s.workCtx, reqs)
	replies := make([]ReplyItem, len(results))
	for i, res := range results {
		ri := &replies[i]
		ri.Seq = j.items[i].Seq
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
		s.metrics.request(op, j.arrived, ok, res.Err)
	}
	s.publishReplies(j.reply, replies)
}

// itemErrorOf returns the error item for err.
func itemErrorOf(err error) ItemError {
	return ItemError{Code: errorCode(err), Message: describe(err), Detail: errorDetail(err)}
}

// publishReplies publishes replies in as few reply frames as the message
// limit (the smaller of Limits.MaxMessage and the server's max_payload)
// allows: one, unless the replies carry large values. A reply too large for
// any frame is replaced by an error item with CodeTooLarge.
func (s *Service) publishReplies(subject string, replies []ReplyItem) {
	limit := s.opts.limits.maxMessage()
	if mp := int(s.nc.MaxPayload()); mp > 0 && mp < limit {
		limit = mp
	}
	// Frame header: array, version, from, item array header.
	header := 1 + 1 + 5 + len(s.acc.ID()) + 5
	var (
		buf  []byte
		ends []int // end offset of each encoded item in buf
	)
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
		msg := appendArrayLen(nil, replyFrameFields)
		msg = appendUint(msg, WireVersion)
		msg = appendStr(msg, s.acc.ID())
		msg = appendArrayLen(msg, i+1-first)
		msg = append(msg, buf[lo:ends[i]]...)
		s.publish(subject, msg)
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
