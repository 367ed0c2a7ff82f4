package synodtest

import (
	"context"
	"fmt"
	"sync"

	"github.com/protosynod/protosynod/synod"
)

// LocalTransport is a synod.Transport that calls in-process Acceptors directly,
// one goroutine per acceptor per request. An acceptor's error comes back as a
// reply with Err set. It is for tests and benchmarks of the
// layers above synod; Isolate, Stop and Heal make acceptors unreachable and
// back.
type LocalTransport struct {
	mu        sync.RWMutex
	acceptors map[string]*synod.Acceptor
	down      map[string]bool
	stopped   map[string]bool
}

var _ synod.Transport = (*LocalTransport)(nil)

// NewLocalTransport returns a transport reaching the given acceptors by ID.
func NewLocalTransport(acceptors ...*synod.Acceptor) *LocalTransport {
	t := &LocalTransport{acceptors: make(map[string]*synod.Acceptor), down: make(map[string]bool), stopped: make(map[string]bool)}
	for _, a := range acceptors {
		t.acceptors[a.ID()] = a
	}
	return t
}

// NewLocalCluster returns n acceptors named a0..a(n-1) over fresh
// MemoryStorages, the transport reaching them, and their majority Config.
func NewLocalCluster(n int) (*LocalTransport, synod.Config, []*synod.MemoryStorage) {
	var (
		cfg    synod.Config
		acs    []*synod.Acceptor
		stores []*synod.MemoryStorage
	)
	for i := range n {
		id := fmt.Sprintf("a%d", i)
		s := synod.NewMemoryStorage()
		stores = append(stores, s)
		acs = append(acs, synod.NewAcceptor(id, s))
		cfg.Acceptors = append(cfg.Acceptors, id)
	}
	return NewLocalTransport(acs...), cfg, stores
}

// Add makes acceptor a reachable under its ID.
func (t *LocalTransport) Add(a *synod.Acceptor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acceptors[a.ID()] = a
}

// Isolate makes acceptor id unreachable: requests to it are dropped.
func (t *LocalTransport) Isolate(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.down[id] = true
}

// Stop makes acceptor id a stopped process: every request to it is answered
// at once with a reply whose Err matches synod.ErrNotDelivered, as
// natstransport answers NATS "no responders".
func (t *LocalTransport) Stop(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped[id] = true
}

// Heal makes every acceptor reachable again.
func (t *LocalTransport) Heal() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.down)
	clear(t.stopped)
}

func (t *LocalTransport) reachable(id string) *synod.Acceptor {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.down[id] || t.stopped[id] {
		return nil
	}
	return t.acceptors[id]
}

// notDelivered returns the error of a request to acceptor id if it is
// stopped, else nil.
func (t *LocalTransport) notDelivered(id string) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !t.stopped[id] {
		return nil
	}
	return fmt.Errorf("synodtest: acceptor %s stopped: %w", id, synod.ErrNotDelivered)
}

// Prepare implements synod.Transport.
func (t *LocalTransport) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	for _, id := range to {
		if err := t.notDelivered(id); err != nil {
			deliver(ctx, replies, synod.PrepareReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err})
			continue
		}
		a := t.reachable(id)
		if a == nil {
			continue
		}
		go func() {
			rep, err := a.Prepare(ctx, req)
			if err != nil {
				// The acceptor could not serve it (its storage failed, say):
				// neither a promise nor a refusal, as natstransport delivers it.
				rep = synod.PrepareReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err}
			}
			deliver(ctx, replies, rep)
		}()
	}
	return nil
}

// Accept implements synod.Transport.
func (t *LocalTransport) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	for _, id := range to {
		if err := t.notDelivered(id); err != nil {
			deliver(ctx, replies, synod.AcceptReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err})
			continue
		}
		a := t.reachable(id)
		if a == nil {
			continue
		}
		go func() {
			rep, err := a.Accept(ctx, req)
			if err != nil {
				rep = synod.AcceptReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err}
			}
			deliver(ctx, replies, rep)
		}()
	}
	return nil
}

func deliver[T any](ctx context.Context, ch chan<- T, v T) {
	if ctx.Err() != nil {
		return
	}
	select {
	case ch <- v:
	default:
	}
}

var _ synod.Reader = (*LocalTransport)(nil)

// Read implements synod.Reader.
func (t *LocalTransport) Read(ctx context.Context, to []string, req synod.ReadRequest, replies chan<- synod.ReadReply) error {
	for _, id := range to {
		if err := t.notDelivered(id); err != nil {
			deliver(ctx, replies, synod.ReadReply{From: id, Key: req.Key, Err: err})
			continue
		}
		a := t.reachable(id)
		if a == nil {
			continue
		}
		go func() {
			if rep, err := a.Read(ctx, req); err == nil {
				deliver(ctx, replies, rep)
			}
		}()
	}
	return nil
}

var _ synod.Admin = (*LocalTransport)(nil)

// admin returns the acceptor id if it is known and reachable.
func (t *LocalTransport) admin(id string) (*synod.Acceptor, error) {
	if a := t.reachable(id); a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("synodtest: acceptor %s unreachable: %w", id, synod.ErrUnavailable)
}

// Install implements synod.Admin.
func (t *LocalTransport) Install(ctx context.Context, to string, cfg synod.Config) (synod.Config, error) {
	a, err := t.admin(to)
	if err != nil {
		return synod.Config{}, err
	}
	return a.Install(ctx, cfg)
}

// AcceptorConfig implements synod.Admin.
func (t *LocalTransport) AcceptorConfig(ctx context.Context, to string) (synod.Config, error) {
	a, err := t.admin(to)
	if err != nil {
		return synod.Config{}, err
	}
	return a.Config(ctx)
}

// ListKeys implements synod.Admin.
func (t *LocalTransport) ListKeys(ctx context.Context, to, after string, limit int) ([]string, error) {
	a, err := t.admin(to)
	if err != nil {
		return nil, err
	}
	return a.Keys(ctx, after, limit)
}

// State implements synod.Admin.
func (t *LocalTransport) State(ctx context.Context, to, key string) (synod.AcceptorState, error) {
	a, err := t.admin(to)
	if err != nil {
		return synod.AcceptorState{}, err
	}
	return a.State(ctx, key)
}

// Forget implements synod.Admin.
func (t *LocalTransport) Forget(ctx context.Context, to, key string, floor uint64) (bool, error) {
	a, err := t.admin(to)
	if err != nil {
		return false, err
	}
	return a.Forget(ctx, key, floor)
}
