package persistence

import (
	"context"
	"errors"
	"fmt"
	"sync"

	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/synod"
)

// Registers is what a Provider needs from the register store: an atomic
// change of one register and a linearizable read. *synod.Client satisfies it.
type Registers interface {
	// Change applies f to the register key atomically and returns the new
	// value; f may run more than once. If f returns an error, the register is
	// unchanged and Change returns that error.
	Change(ctx context.Context, key string, f synod.ChangeFunc) ([]byte, error)
	// Read returns the register's current value (nil if it was never written).
	Read(ctx context.Context, key string) ([]byte, error)
}

var (
	_ Registers                      = (*synod.Client)(nil)
	_ protopersistence.Provider      = (*Provider)(nil)
	_ protopersistence.ProviderState = (*State)(nil)
)

// Provider is a protoactor persistence.Provider that keeps each actor's
// snapshot and events in one register: pass it to persistence.Using. It is
// safe for concurrent use by any number of actors.
type Provider struct {
	regs Registers
	opts options
}

// NewProvider returns a Provider over regs, typically a *synod.Client.
func NewProvider(regs Registers, opts ...Option) (*Provider, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if regs == nil {
		return nil, errorf(ErrInvalidConfig, "nil Registers")
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Provider{regs: regs, opts: o}, nil
}

// GetState implements persistence.Provider. It returns a new *State on every
// call; protoactor's persistence mixin calls it once per actor incarnation, so
// each incarnation's recovery is served by its own State.
func (p *Provider) GetState() protopersistence.ProviderState { return p.NewState() }

// NewState returns a new State of the provider.
func (p *Provider) NewState() *State { return &State{p: p} }

// Key returns the register key of the actor named actorName.
func (p *Provider) Key(actorName string) string {
	if p.opts.keyFunc != nil {
		return p.opts.keyFunc(actorName)
	}
	return p.opts.keyPrefix + actorName
}

// State implements protoactor's persistence.ProviderState over a Provider's
// registers. Every method that fails panics with an *OpError (see the package
// documentation). A State is safe for concurrent use.
//
// Recovery reads the register once: GetSnapshot reads it and keeps the record,
// and the next GetEvents for the same actor is served from that record, so the
// snapshot and the events come from one consistent value. Restart, and every
// other operation on that actor, drops the kept record.
type State struct {
	p *Provider

	mu       sync.Mutex
	recovery map[string]record // by actor name; set by GetSnapshot, taken by GetEvents
}

// Restart implements persistence.ProviderState. The persistence mixin calls it
// before each recovery; it drops records kept by GetSnapshot.
func (s *State) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.recovery)
}

// GetSnapshotInterval implements persistence.ProviderState.
func (s *State) GetSnapshotInterval() int { return s.p.opts.snapshotInterval }

// GetSnapshot implements persistence.SnapshotStore: it reads the actor's
// register and returns its snapshot and the snapshot's event index, or ok false
// if the actor never persisted a snapshot. The record read is kept for the next
// GetEvents of this actor.
func (s *State) GetSnapshot(actorName string) (snapshot interface{}, eventIndex int, ok bool) {
	const op = "GetSnapshot"
	r := s.read(op, actorName, -1)
	s.mu.Lock()
	if s.recovery == nil {
		s.recovery = make(map[string]record)
	}
	s.recovery[actorName] = r
	s.mu.Unlock()
	if !r.hasSnapshot {
		return nil, 0, false
	}
	m, err := unmarshalAny(r.snapshot)
	if err != nil {
		s.fail(op, actorName, r.snapshotIndex, fmt.Errorf("snapshot: %w", err))
	}
	return m, r.snapshotIndex, true
}

// GetEvents implements persistence.EventStore: it calls callback with each
// event whose index i satisfies eventIndexStart <= i < eventIndexEnd (no upper
// bound when eventIndexEnd is 0), oldest first. The events come from the
// record kept by the preceding GetSnapshot of this actor if there is one, from
// a fresh read otherwise. Events before the snapshot are gone: asking for them
// panics with ErrCompacted. All events are decoded before the first callback.
func (s *State) GetEvents(actorName string, eventIndexStart int, eventIndexEnd int, callback func(e interface{})) {
	const op = "GetEvents"
	s.mu.Lock()
	r, ok := s.recovery[actorName]
	delete(s.recovery, actorName)
	s.mu.Unlock()
	if !ok {
		r = s.read(op, actorName, eventIndexStart)
	}
	lo, hi := max(eventIndexStart, 0), eventIndexEnd
	if hi == 0 || hi > r.nextIndex {
		hi = r.nextIndex
	}
	if lo >= hi {
		return
	}
	if lo < r.snapshotIndex {
		s.fail(op, actorName, eventIndexStart, errorf(ErrCompacted,
			"events before index %d were discarded when the snapshot at that index was persisted", r.snapshotIndex))
	}
	msgs := make([]proto.Message, 0, hi-lo)
	for i := lo; i < hi; i++ {
		m, err := unmarshalAny(r.events[i-r.snapshotIndex])
		if err != nil {
			s.fail(op, actorName, eventIndexStart, fmt.Errorf("event %d: %w", i, err))
		}
		msgs = append(msgs, m)
	}
	for _, m := range msgs {
		callback(m)
	}
}

// PersistEvent implements persistence.EventStore: it appends event to the
// actor's register if eventIndex is the register's next index, and panics with
// ErrFenced otherwise, because then another activation of the actor has
// persisted events this one has not seen.
func (s *State) PersistEvent(actorName string, eventIndex int, event proto.Message) {
	const op = "PersistEvent"
	s.forget(actorName)
	ev, err := marshalAny(event)
	if err != nil {
		s.fail(op, actorName, eventIndex, err)
	}
	s.change(op, actorName, eventIndex, func(r *record) error {
		if eventIndex != r.nextIndex {
			return fmt.Errorf("%w (event index %d, but the register's next index is %d)", ErrFenced, eventIndex, r.nextIndex)
		}
		r.events = append(r.events, ev) // decodeRecord allocated r.events; it aliases nothing
		r.nextIndex++
		return nil
	})
}

// PersistSnapshot implements persistence.SnapshotStore: it replaces the
// actor's snapshot and discards the events before snapshotIndex, which the
// snapshot stands for. A snapshot older than the register's (or at a
// negative index) is ignored: the newer one stands for at least as many
// events. One beyond the register's next index panics with ErrFenced.
func (s *State) PersistSnapshot(actorName string, snapshotIndex int, snapshot proto.Message) {
	const op = "PersistSnapshot"
	s.forget(actorName)
	snap, err := marshalAny(snapshot)
	if err != nil {
		s.fail(op, actorName, snapshotIndex, err)
	}
	s.change(op, actorName, snapshotIndex, func(r *record) error {
		switch {
		case snapshotIndex > r.nextIndex:
			return fmt.Errorf("%w (snapshot index %d, but the register's next index is %d)", ErrFenced, snapshotIndex, r.nextIndex)
		case snapshotIndex < r.snapshotIndex || snapshotIndex < 0:
			return errStaleSnapshot
		}
		r.events = r.events[snapshotIndex-r.snapshotIndex:]
		r.hasSnapshot, r.snapshot, r.snapshotIndex = true, snap, snapshotIndex
		return nil
	})
}

// DeleteEvents implements persistence.EventStore. It does nothing: the
// register holds only the events since the snapshot, which recovery needs
// (PersistSnapshot already discarded the older ones). Deleting them would make
// recovery differ from protoactor's InMemoryProvider, which ignores deletes.
func (s *State) DeleteEvents(actorName string, inclusiveToIndex int) {
	s.p.opts.logger.Debug("persistence: DeleteEvents is a no-op; PersistSnapshot discards old events",
		"actor", actorName, "index", inclusiveToIndex)
}

// DeleteSnapshots implements persistence.SnapshotStore. It does nothing: the
// register holds only the latest snapshot, which recovery needs.
func (s *State) DeleteSnapshots(actorName string, inclusiveToIndex int) {
	s.p.opts.logger.Debug("persistence: DeleteSnapshots is a no-op; the register keeps only the latest snapshot",
		"actor", actorName, "index", inclusiveToIndex)
}

// errStaleSnapshot makes a change keep the register as it is; it never leaves
// the package.
var errStaleSnapshot = errors.New("persistence: snapshot older than the register's")

// forget drops the record GetSnapshot kept for actorName.
func (s *State) forget(actorName string) {
	s.mu.Lock()
	delete(s.recovery, actorName)
	s.mu.Unlock()
}

// read reads and decodes the actor's register, panicking on failure.
func (s *State) read(op, actorName string, index int) record {
	ctx, cancel := context.WithTimeout(context.Background(), s.p.opts.timeout)
	defer cancel()
	v, err := s.p.regs.Read(ctx, s.p.Key(actorName))
	if err != nil {
		s.fail(op, actorName, index, err)
	}
	r, err := decodeRecord(v)
	if err != nil {
		s.fail(op, actorName, index, err)
	}
	s.p.opts.logger.Debug("persistence: read", "op", op, "actor", actorName, "bytes", len(v),
		"snapshot", r.hasSnapshot, "snapshotIndex", r.snapshotIndex, "nextIndex", r.nextIndex)
	return r
}

// change applies edit to the actor's register, checking the size limit, and
// panics on failure.
func (s *State) change(op, actorName string, index int, edit func(*record) error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.p.opts.timeout)
	defer cancel()
	limit := s.p.opts.maxValueSize
	_, err := s.p.regs.Change(ctx, s.p.Key(actorName), func(cur []byte) ([]byte, error) {
		r, err := decodeRecord(cur)
		if err != nil {
			return nil, err
		}
		if err := edit(&r); err != nil {
			return nil, err
		}
		if n := r.size(); n > limit {
			return nil, fmt.Errorf("%w: the value of actor %q would be %d bytes, over the limit of %d, "+
				"with a snapshot of %d bytes and %d events since index %d; "+
				"lower the snapshot interval (now %d) or persist smaller events and snapshots",
				ErrTooLarge, actorName, n, limit, len(r.snapshot), len(r.events), r.snapshotIndex, s.p.opts.snapshotInterval)
		}
		return r.encode(), nil
	})
	switch {
	case errors.Is(err, errStaleSnapshot):
		s.p.opts.logger.Debug("persistence: ignored a snapshot older than the register's", "actor", actorName, "index", index)
	case err != nil:
		s.fail(op, actorName, index, err)
	}
}

// fail logs err and panics with it as an *OpError, so that the actor's
// supervisor restarts the actor, which then recovers from its register.
func (s *State) fail(op, actorName string, index int, err error) {
	e := &OpError{Op: op, Actor: actorName, Index: index, Err: err}
	s.p.opts.logger.Warn("persistence: operation failed; panicking so that the actor's supervisor restarts it",
		"op", op, "actor", actorName, "index", index, "err", err)
	panic(e)
}

// Delete removes the actor actorName's journal for good: it writes the
// register's tombstone (the empty value) through a round, so a later actor of
// that name recovers nothing, as a new one does. Stop the actor first; one
// still running finds the register emptied at its next PersistEvent and
// panics, as after any other writer (see the package doc). The acceptors drop
// the key itself at the next garbage collection
// (synod.Reconfigurer.CollectGarbage).
func (p *Provider) Delete(ctx context.Context, actorName string) error {
	key := p.Key(actorName)
	if _, err := p.regs.Change(ctx, key, func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		return fmt.Errorf("persistence: delete %q: %w", key, err)
	}
	return nil
}
