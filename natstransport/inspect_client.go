package natstransport

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/synod"
)

// Inspector asks acceptors' inspect endpoints about their state, for
// operators' tools. It changes nothing on the acceptors and needs only the
// right to publish on their inspect subjects (see InspectSubject) and to
// receive replies. It is safe for concurrent use.
type Inspector struct {
	nc      *nats.Conn
	cluster string
	prefix  string
}

// NewInspector returns an Inspector of cluster's acceptors over nc. Of the
// options only WithPrefix matters.
func NewInspector(nc *nats.Conn, cluster string, opts ...Option) (*Inspector, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if nc == nil {
		return nil, fmt.Errorf("%w: natstransport: nil connection", synod.ErrInvalidConfig)
	}
	if _, err := InspectSubject(o.prefix, cluster, "x"); err != nil {
		return nil, fmt.Errorf("natstransport: new inspector: %w: %w", synod.ErrInvalidConfig, err)
	}
	return &Inspector{nc: nc, cluster: cluster, prefix: o.prefix}, nil
}

// Key returns acceptor's state of key. An acceptor nobody serves gives an
// error wrapping nats.ErrNoResponders; an error reply a *RemoteError.
func (in *Inspector) Key(ctx context.Context, acceptor, key string) (KeyInfo, error) {
	data, err := in.request(ctx, acceptor, InspectRequest{Kind: InspectKey, Key: key})
	if err != nil {
		return KeyInfo{}, err
	}
	k, err := DecodeKeyInfo(data)
	if err == nil && (k.From != acceptor || k.Key != key) {
		err = fmt.Errorf("%w: reply from %q for key %q", ErrMalformed, k.From, k.Key)
	}
	if err != nil {
		return KeyInfo{}, wrapf(err, "inspect %q at %s", key, acceptor)
	}
	return k, nil
}

// Keys returns a page of acceptor's keys that start with prefix, after the
// key after ("" from the first), at most limit of them (0 for
// DefaultInspectPage). When the page's More is set, ask again with after set
// to its last key.
func (in *Inspector) Keys(ctx context.Context, acceptor, prefix, after string, limit int) (KeyPage, error) {
	data, err := in.request(ctx, acceptor, InspectRequest{Kind: InspectKeys, Prefix: prefix, After: after, Limit: limit})
	if err != nil {
		return KeyPage{}, err
	}
	p, err := DecodeKeyPage(data)
	if err == nil && p.From != acceptor {
		err = fmt.Errorf("%w: reply from %q", ErrMalformed, p.From)
	}
	if err != nil {
		return KeyPage{}, wrapf(err, "inspect keys %q at %s", prefix, acceptor)
	}
	return p, nil
}

// Config returns the configuration acceptor serves, with its epoch (the
// zero Config for an acceptor never given one). An acceptor from before
// this request answers with a *RemoteError of code 400 (unknown kind).
func (in *Inspector) Config(ctx context.Context, acceptor string) (synod.Config, error) {
	data, err := in.request(ctx, acceptor, InspectRequest{Kind: InspectConfig})
	if err != nil {
		return synod.Config{}, err
	}
	c, err := DecodeConfigInfo(data)
	if err == nil && c.From != acceptor {
		err = fmt.Errorf("%w: reply from %q", ErrMalformed, c.From)
	}
	if err != nil {
		return synod.Config{}, wrapf(err, "inspect configuration at %s", acceptor)
	}
	return c.Config, nil
}

func (in *Inspector) request(ctx context.Context, acceptor string, req InspectRequest) ([]byte, error) {
	subj, err := InspectSubject(in.prefix, in.cluster, acceptor)
	if err != nil {
		return nil, fmt.Errorf("natstransport: inspect: %w: %w", synod.ErrInvalidConfig, err)
	}
	data, err := EncodeInspectRequest(req)
	if err != nil {
		return nil, err
	}
	m, err := in.nc.RequestWithContext(ctx, subj, data)
	if err != nil {
		return nil, fmt.Errorf("natstransport: inspect %s: %w", subj, err)
	}
	if err := replyError(acceptor, m); err != nil {
		return nil, err
	}
	return m.Data, nil
}
