package natstransport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/synod"
)

// The Transport implements synod.Admin over the acceptors' admin endpoints,
// so a synod.Reconfigurer runs over NATS. Admin calls need the NATS
// permission to publish on <prefix>.<cluster>.*.admin, which proposers do not
// need: grant it to operators only.
var _ synod.Admin = (*Transport)(nil)

// Install implements synod.Admin: it makes acceptor to serve cfg and returns
// the configuration it serves. An install older than the acceptor's
// configuration fails with a *synod.StaleEpochError carrying it; a different
// configuration under the same epoch with an error matching
// synod.ErrInvalidConfig.
func (t *Transport) Install(ctx context.Context, to string, cfg synod.Config) (synod.Config, error) {
	rep, err := t.admin(ctx, to, AdminRequest{Kind: AdminInstall, Config: cfg})
	return rep.Config, err
}

// AcceptorConfig implements synod.Admin: the configuration acceptor to
// serves (the zero Config if it was never given one).
func (t *Transport) AcceptorConfig(ctx context.Context, to string) (synod.Config, error) {
	rep, err := t.admin(ctx, to, AdminRequest{Kind: AdminConfig})
	return rep.Config, err
}

// ListKeys implements synod.Admin: up to limit keys acceptor to stores after
// after, in order, in as many admin requests as it takes.
func (t *Transport) ListKeys(ctx context.Context, to, after string, limit int) ([]string, error) {
	var keys []string
	for len(keys) < limit {
		rep, err := t.admin(ctx, to, AdminRequest{Kind: AdminKeys, After: after, Limit: min(limit-len(keys), MaxAdminPage)})
		if err != nil {
			return keys, err
		}
		for _, k := range rep.Keys {
			if k <= after {
				return keys, wrapf(fmt.Errorf("%w: key %q after %q out of order", ErrMalformed, k, after), "admin keys at %s", to)
			}
			after = k
		}
		keys = append(keys, rep.Keys...)
		if !rep.More || len(rep.Keys) == 0 {
			break
		}
	}
	return keys, nil
}

// State implements synod.Admin: acceptor to's stored state of key, value
// included.
func (t *Transport) State(ctx context.Context, to, key string) (synod.AcceptorState, error) {
	rep, err := t.admin(ctx, to, AdminRequest{Kind: AdminState, Key: key})
	if err == nil && rep.Key != key {
		err = wrapf(fmt.Errorf("%w: state of %q for %q", ErrMalformed, rep.Key, key), "admin state at %s", to)
	}
	return rep.State, err
}

// Forget implements synod.Admin: acceptor to removes key if it is inert
// below floor, and reports whether it did.
func (t *Transport) Forget(ctx context.Context, to, key string, floor uint64) (bool, error) {
	rep, err := t.admin(ctx, to, AdminRequest{Kind: AdminForget, Key: key, Floor: floor})
	if err == nil && rep.Key != key {
		err = wrapf(fmt.Errorf("%w: forget reply for %q, asked %q", ErrMalformed, rep.Key, key), "admin forget at %s", to)
	}
	return rep.Removed, err
}

// adminRequestTimeout bounds one admin request of kind: the acceptor's own
// bound on serving it, and some slack.
func adminRequestTimeout(kind AdminKind) time.Duration {
	switch kind {
	case AdminInstall:
		return adminTimeout + 2*time.Second
	case AdminCompact:
		return compactTimeout + 5*time.Second
	}
	return 5 * time.Second
}

// admin sends req to acceptor to's admin endpoint and returns its reply. An
// error reply comes back as a *synod.StaleEpochError (CodeStaleEpoch with the
// acceptor's configuration) or a *RemoteError; an acceptor nobody serves as
// an error wrapping nats.ErrNoResponders and synod.ErrUnavailable.
func (t *Transport) admin(ctx context.Context, to string, req AdminRequest) (AdminReply, error) {
	subj, err := AdminSubject(t.opts.prefix, t.cluster, to)
	if err != nil {
		return AdminReply{}, fmt.Errorf("natstransport: admin: %w: %w", synod.ErrInvalidConfig, err)
	}
	data, err := EncodeAdminRequest(req)
	if err != nil {
		return AdminReply{}, err
	}
	// A request that reached a subscription of an instance that just died
	// is never answered: bound each request, so that a caller retrying an
	// acceptor (a fence does) tries again instead of waiting out its own
	// deadline.
	rctx, cancel := context.WithTimeout(ctx, adminRequestTimeout(req.Kind))
	defer cancel()
	m, err := t.nc.RequestWithContext(rctx, subj, data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return AdminReply{}, fmt.Errorf("natstransport: admin %v at %s: %w (%w)", req.Kind, to, synod.ErrUnavailable, err)
		}
		return AdminReply{}, fmt.Errorf("natstransport: admin %v at %s: %w", req.Kind, to, err)
	}
	rep, derr := DecodeAdminReply(m.Data, t.opts.limits)
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		if derr == nil && rep.Error != nil {
			return AdminReply{}, itemErr(to, req.Config.Epoch, rep.Error)
		}
		return AdminReply{}, &RemoteError{Acceptor: to, Code: code, Description: m.Header.Get(micro.ErrorHeader)}
	}
	switch {
	case derr != nil:
		return AdminReply{}, wrapf(derr, "admin %v at %s", req.Kind, to)
	case rep.Error != nil:
		return AdminReply{}, itemErr(to, req.Config.Epoch, rep.Error)
	case rep.From != to || rep.Kind != req.Kind:
		return AdminReply{}, wrapf(fmt.Errorf("%w: %v reply from %q", ErrMalformed, rep.Kind, rep.From), "admin %v at %s", req.Kind, to)
	}
	return rep, nil
}

// Compact asks acceptor to to reclaim now the disk space of the keys garbage
// collection removed, and returns its storage's bytes on disk before and
// after. It is not part of synod.Admin: `synod gc` calls it after a
// collection.
func (t *Transport) Compact(ctx context.Context, to string) (before, after uint64, err error) {
	rep, err := t.admin(ctx, to, AdminRequest{Kind: AdminCompact})
	return rep.Before, rep.After, err
}
