package natstransport

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/synod"
)

// PrepareAt sends req alone to one acceptor, as a version-1 request on its
// .prepare subject, and waits for its reply, for tools and tests; proposers
// use Prepare. An error reply comes back as a *RemoteError,
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
		err = checkReply(acceptor, req.Key, req.Ballot, rep.From, rep.Key, rep.Ballot)
	}
	if err != nil {
		return synod.PrepareReply{}, fmt.Errorf("natstransport: prepare %q at %s: %w", req.Key, acceptor, err)
	}
	return rep, nil
}

// AcceptAt sends req alone to one acceptor, as a version-1 request on its
// .accept subject, and waits for its reply, as PrepareAt.
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
		err = checkReply(acceptor, req.Key, req.Ballot, rep.From, rep.Key, rep.Ballot)
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
	prep, acc, err := Subjects(t.opts.prefix, t.cluster, acceptor)
	if err != nil {
		return nil, err
	}
	subj := acc
	if isPrepare {
		subj = prep
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

// FrameAt sends items to one acceptor as one version-2 request frame, outside
// the batching of Prepare, Accept and Read, and waits until every item has
// its reply item (the acceptor may split them over several reply frames) or
// ctx ends. It returns the replies in the order of items; an acceptor that
// refuses the whole frame gives a *RemoteError, one nobody serves an error
// wrapping nats.ErrNoResponders. The Seq of every item must be distinct. For
// tools and tests.
func (t *Transport) FrameAt(ctx context.Context, acceptor string, items []RequestItem) ([]ReplyItem, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	subj, err := FrameSubject(t.opts.prefix, t.cluster, acceptor)
	if err != nil {
		return nil, err
	}
	index := make(map[uint64]int, len(items))
	for i, it := range items {
		if _, dup := index[it.Seq]; dup {
			return nil, fmt.Errorf("natstransport: frame to %s: %w: seq %d used twice", acceptor, synod.ErrInvalidRequest, it.Seq)
		}
		index[it.Seq] = i
	}
	data, err := EncodeRequestFrame(items)
	if err != nil {
		return nil, err
	}
	inbox := t.nc.NewInbox()
	sub, err := t.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("natstransport: frame to %s: %w", acceptor, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := t.nc.PublishRequest(subj, inbox, data); err != nil {
		return nil, fmt.Errorf("natstransport: frame to %s: %w", acceptor, err)
	}
	replies := make([]ReplyItem, len(items))
	got := make([]bool, len(items))
	for left := len(items); left > 0 || len(items) == 0; {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("natstransport: frame to %s: %w", acceptor, err)
		}
		if err := replyError(acceptor, m); err != nil {
			return nil, err
		}
		f, err := DecodeReplyFrame(m.Data, t.opts.limits)
		if err == nil && f.From != acceptor {
			err = fmt.Errorf("%w: reply frame from %q on the reply subject of acceptor %q", ErrMalformed, f.From, acceptor)
		}
		if err != nil {
			return nil, fmt.Errorf("natstransport: frame to %s: %w", acceptor, err)
		}
		if len(items) == 0 {
			break
		}
		for _, ri := range f.Items {
			if i, ok := index[ri.Seq]; ok && !got[i] {
				replies[i], got[i] = ri, true
				left--
			}
		}
	}
	return replies, nil
}

// ReadAt sends req to one acceptor in a frame of its own and waits for its
// reply, for tools and tests; proposers use Read. An error item comes back as
// a *RemoteError, as in PrepareAt.
func (t *Transport) ReadAt(ctx context.Context, acceptor string, req synod.ReadRequest) (synod.ReadReply, error) {
	if err := t.checkRequest(req.Key, synod.Ballot{}, req.Validate(), nil); err != nil {
		return synod.ReadReply{}, fmt.Errorf("natstransport: read: %w", err)
	}
	reps, err := t.FrameAt(ctx, acceptor, []RequestItem{{Seq: 1, BatchRequest: synod.BatchRequest{Op: synod.OpRead, Read: req}}})
	if err != nil {
		return synod.ReadReply{}, err
	}
	ri := reps[0]
	switch {
	case ri.Op == itemError:
		return synod.ReadReply{}, itemErr(acceptor, req.Epoch, &ri.Error)
	case ri.Op != synod.OpRead || ri.Read.Key != req.Key:
		return synod.ReadReply{}, fmt.Errorf("natstransport: read %q at %s: %w: %v reply for %q", req.Key, acceptor, ErrMalformed, ri.Op, ri.Read.Key)
	}
	return ri.Read, nil
}
