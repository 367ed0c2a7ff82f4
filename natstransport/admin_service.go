package natstransport

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/synod"
)

// adminTimeout bounds one admin request at the acceptor: an install waits
// for the requests admitted under the previous configuration.
const adminTimeout = 10 * time.Second

// compactTimeout bounds a compaction.
const compactTimeout = 5 * time.Minute

// handleAdmin answers an admin request on the subscription's goroutine:
// admin requests are rare and served one at a time, apart from the workers
// that serve proposers.
func (s *Service) handleAdmin(req micro.Request) {
	arrived := time.Now()
	r, err := DecodeAdminRequest(req.Data())
	if err != nil {
		s.stats.BadRequests.Add(1)
		s.metrics.malformedRequest(opAdmin)
		s.rlog.Log(slog.LevelWarn, "bad "+opAdmin, "natstransport: bad request", "subject", req.Subject(), "bytes", len(req.Data()), "err", err)
		s.replyAdminError(req, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.workCtx, adminTimeout)
	defer cancel()
	rep := AdminReply{Kind: r.Kind, From: s.acc.ID(), Key: r.Key}
	switch r.Kind {
	case AdminInstall:
		rep.Config, err = s.acc.Install(ctx, r.Config)
		if err == nil {
			s.log.Info("natstransport: configuration installed", "config", rep.Config.String())
			s.warnIfRetired(rep.Config)
		}
	case AdminConfig:
		rep.Config, err = s.acc.Config(ctx)
	case AdminKeys:
		rep.Keys, rep.More, err = s.adminKeys(ctx, r.After, r.Limit)
	case AdminState:
		rep.State, err = s.acc.State(ctx, r.Key)
	case AdminForget:
		rep.Removed, err = s.acc.Forget(ctx, r.Key, r.Floor)
	case AdminCompact:
		var cctx context.Context
		cctx, cancel = context.WithTimeout(s.workCtx, compactTimeout)
		defer cancel()
		rep.Before, rep.After, err = s.acc.Compact(cctx)
	}
	s.metrics.request(opAdmin, arrived, true, err)
	if err != nil {
		s.rlog.Log(slog.LevelWarn, opAdmin+" "+errorCode(err), "natstransport: admin request failed", "kind", r.Kind.String(), "err", err)
		s.replyAdminError(req, wrapf(err, "admin %v at %s", r.Kind, s.acc.ID()))
		return
	}
	data, err := EncodeAdminReply(rep)
	if err != nil {
		s.replyAdminError(req, err)
		return
	}
	if err := req.Respond(data); err != nil {
		s.stats.ReplyErrors.Add(1)
		s.log.Debug("natstransport: admin reply not sent", "err", err)
	}
}

// adminKeys returns up to limit keys after after, and whether more follow,
// within adminPageBytes.
func (s *Service) adminKeys(ctx context.Context, after string, limit int) (keys []string, more bool, err error) {
	size := 0
	keys = []string{}
	err = s.acc.KeysFrom(ctx, after+"\x00", func(k string) bool {
		if after != "" && k <= after {
			return true
		}
		if len(keys) == limit || size+len(k)+5 > adminPageBytes {
			more = true
			return false
		}
		keys = append(keys, k)
		size += len(k) + 5
		return true
	})
	return keys, more, err
}

// replyAdminError answers req with an admin error reply: the code and
// message in micro's headers and in the body, and for a stale epoch the
// acceptor's configuration as its detail.
func (s *Service) replyAdminError(req micro.Request, err error) {
	if req.Reply() == "" {
		return
	}
	code, desc := errorCode(err), describe(err)
	s.countFailure(code)
	body, _ := EncodeAdminReply(AdminReply{From: s.acc.ID(), Error: &ItemError{Code: code, Message: desc, Detail: errorDetail(err)}})
	if rerr := req.Error(code, desc, body); rerr != nil {
		s.stats.ReplyErrors.Add(1)
		s.log.Debug("natstransport: admin error reply not sent", "subject", req.Subject(), "err", rerr)
	}
}

// warnIfRetired tells the operator when cfg no longer lists this acceptor:
// it then refuses every request (its ID never rejoins), and its process and
// data are only waiting to be removed.
func (s *Service) warnIfRetired(cfg synod.Config) {
	if cfg.Epoch == 0 || cfg.Has(s.acc.ID()) {
		return
	}
	s.log.Warn("natstransport: this acceptor is retired: the cluster's configuration no longer lists it and it refuses every request; stop it and remove its data directory",
		"acceptor", s.acc.ID(), "config", cfg.String())
}
