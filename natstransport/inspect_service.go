package natstransport

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"
)

// inspectTimeout bounds the storage reads of one inspect request.
const inspectTimeout = 5 * time.Second

// handleInspect answers an inspect request on the subscription's goroutine:
// inspect requests are read-only and served one at a time, so an operator's
// tool never competes with prepares and accepts for the workers.
func (s *Service) handleInspect(req micro.Request) {
	arrived := time.Now()
	r, err := DecodeInspectRequest(req.Data())
	if err != nil {
		s.stats.BadRequests.Add(1)
		s.metrics.malformedRequest(opInspect)
		s.rlog.Log(slog.LevelWarn, "bad "+opInspect, "natstransport: bad request", "subject", req.Subject(), "bytes", len(req.Data()), "err", err)
		s.replyError(req, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.workCtx, inspectTimeout)
	defer cancel()
	var data []byte
	switch r.Kind {
	case InspectKey:
		data, err = s.keyInfo(ctx, r.Key)
	case InspectConfig:
		data, err = s.configInfo(ctx)
	default:
		data, err = s.keyPage(ctx, r)
	}
	s.metrics.request(opInspect, arrived, true, err)
	if err != nil {
		s.rlog.Log(slog.LevelError, opInspect+" "+errorCode(err), "natstransport: inspect failed", "err", err)
		s.replyError(req, err)
		return
	}
	if err := req.Respond(data); err != nil {
		s.stats.ReplyErrors.Add(1)
		s.log.Debug("natstransport: inspect reply not sent", "err", err)
	}
}

// keyInfo returns the reply frame for the state of key.
func (s *Service) keyInfo(ctx context.Context, key string) ([]byte, error) {
	st, err := s.acc.State(ctx, key)
	if err != nil {
		return nil, wrapf(err, "inspect %q", key)
	}
	return EncodeKeyInfo(KeyInfo{
		From: s.acc.ID(), Key: key, Promised: st.Promised, Accepted: st.Accepted, ValueSize: len(st.Value),
	})
}

// configInfo returns the reply frame for the configuration served.
func (s *Service) configInfo(ctx context.Context) ([]byte, error) {
	cfg, err := s.acc.Config(ctx)
	if err != nil {
		return nil, wrapf(err, "inspect configuration")
	}
	return EncodeConfigInfo(ConfigInfo{From: s.acc.ID(), Config: cfg})
}

// keyPage returns the reply frame for a page of keys: those with r.Prefix
// after r.After, at most r.pageLimit() of them and inspectPageBytes of keys.
func (s *Service) keyPage(ctx context.Context, r InspectRequest) ([]byte, error) {
	start := r.Prefix
	if r.After != "" && r.After >= start {
		start = r.After + "\x00" // the least key after r.After
	}
	limit := r.pageLimit()
	page := KeyPage{From: s.acc.ID(), Keys: []string{}}
	size := 0
	err := s.acc.KeysFrom(ctx, start, func(k string) bool {
		if !strings.HasPrefix(k, r.Prefix) {
			return false // keys are sorted: the prefix's keys are behind us
		}
		if len(page.Keys) == limit || size+len(k)+5 > inspectPageBytes {
			page.More = true
			return false
		}
		page.Keys = append(page.Keys, k)
		size += len(k) + 5 // the key and its msgpack header
		return true
	})
	if err != nil {
		return nil, wrapf(err, "inspect keys %q", r.Prefix)
	}
	return EncodeKeyPage(page)
}
