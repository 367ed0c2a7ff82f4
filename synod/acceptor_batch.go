package synod

import (
	"context"
	"fmt"
	"slices"
)

// Op is the kind of an acceptor request in a batch.
type Op uint8

// The request kinds. Their values are those of natstransport's version-2
// frame items.
const (
	OpPrepare Op = 1
	OpAccept  Op = 2
	OpRead    Op = 3
)

// String implements fmt.Stringer.
func (o Op) String() string {
	switch o {
	case OpPrepare:
		return "prepare"
	case OpAccept:
		return "accept"
	case OpRead:
		return "read"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// BatchRequest is one request of a batch (see Acceptor.ApplyBatch): Op says
// which of Prepare, Accept and Read it is; the other two are ignored.
type BatchRequest struct {
	Op      Op
	Prepare PrepareRequest
	Accept  AcceptRequest
	Read    ReadRequest
}

// Key returns the key of the request Op names ("" for an unknown Op).
func (r *BatchRequest) Key() string {
	switch r.Op {
	case OpPrepare:
		return r.Prepare.Key
	case OpAccept:
		return r.Accept.Key
	case OpRead:
		return r.Read.Key
	}
	return ""
}

// Epoch returns the configuration epoch of the request Op names.
func (r *BatchRequest) Epoch() uint64 {
	switch r.Op {
	case OpPrepare:
		return r.Prepare.Epoch
	case OpAccept:
		return r.Accept.Epoch
	case OpRead:
		return r.Read.Epoch
	}
	return 0
}

// Validate reports a malformed request: an unknown Op, or what the Validate
// method of its request reports.
func (r *BatchRequest) Validate() error {
	switch r.Op {
	case OpPrepare:
		return r.Prepare.Validate()
	case OpAccept:
		return r.Accept.Validate()
	case OpRead:
		return r.Read.Validate()
	}
	return errorf(ErrInvalidRequest, "unknown request kind %d", r.Op)
}

// BatchReply answers one BatchRequest. When Err is nil, the field Op names
// holds the reply. Err, when not nil, says why the acceptor did not serve the
// request (malformed, or its storage failed): the reply fields are then
// meaningless, and the request may or may not have reached the disk.
type BatchReply struct {
	Op      Op
	Prepare PrepareReply
	Accept  AcceptReply
	Read    ReadReply
	Err     error
}

// KeyState is one register's key and state, for BatchStorage.
type KeyState struct {
	Key   string
	State AcceptorState
}

// BatchStorage is an optional Storage ability: StoreBatch stores several
// registers with one sync. It returns nil only once all of them are durable.
// It may refuse some entries and store the others: it then returns a
// *BatchError whose Errs[i] is the error of entries[i], nil for each entry
// that is durable (a store below its space reserve refuses new keys that way,
// and keeps writing existing ones); the *BatchError itself, not wrapped. On
// any other error none of the entries may be taken as stored. ApplyBatch lists each key at most once.
type BatchStorage interface {
	StoreBatch(ctx context.Context, entries []KeyState) error
}

// BatchError is the error of a StoreBatch that stored some of its entries and
// refused others: Errs[i] is the error of entry i, nil if that entry is
// durable. errors.Is and errors.As see the entries' errors.
type BatchError struct {
	Errs []error
}

// Error implements error: the number of entries refused and the first error.
func (e *BatchError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if n++; first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("synod: %d of %d entries of a batch not stored: %v", n, len(e.Errs), first)
}

// Unwrap returns the entries' errors.
func (e *BatchError) Unwrap() []error {
	var errs []error
	for _, err := range e.Errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// batchKey is the state of one key during ApplyBatch.
type batchKey struct {
	lock    *keyLock
	st      AcceptorState
	err     error // load or store error: every request of the key fails
	changed bool
	cached  bool // st came from the state cache: its Value is the cache's
}

// ApplyBatch applies reqs in order, as if each were handled alone, and returns
// one reply per request, in the same order. Requests of one key see the state
// the earlier ones left. Every state the batch changed is persisted before
// ApplyBatch returns, with one StoreBatch if the Storage is a BatchStorage and
// more than one key changed (one sync for the whole batch), or else with one
// Store per changed key. If storing fails, every request of the keys that
// failed gets the error (a *BatchError from StoreBatch fails only the entries
// it names); requests of other keys keep their replies. A malformed
// request gets its validation error and changes nothing; a request from an
// older epoch than the acceptor's configuration gets a *StaleEpochError, and a
// prepare or accept whose ballot counter is at or below the configuration's
// floor a refusal, as Prepare describes.
//
// The keys of a batch are locked together (in key order, so concurrent batches
// do not deadlock): batches and single requests of one key are serialized,
// those of different keys run concurrently so the Storage can commit them
// together.
func (a *Acceptor) ApplyBatch(ctx context.Context, reqs []BatchRequest) []BatchReply {
	replies := make([]BatchReply, len(reqs))
	answered := make([]bool, len(reqs)) // without touching the key's state
	valid := 0
	for i := range reqs {
		replies[i].Op = reqs[i].Op
		if err := reqs[i].Validate(); err != nil {
			replies[i].Err, answered[i] = err, true
			continue
		}
		valid++
	}
	if valid == 0 {
		return replies
	}
	// The epoch lock is held shared from the epoch checks until the replies
	// are ready, as for single requests (see admit).
	if err := a.rlock(ctx); err != nil {
		for i := range replies {
			if !answered[i] {
				replies[i].Err = err
			}
		}
		return replies
	}
	defer a.epochMu.RUnlock()
	keys := make([]string, 0, valid)
	for i := range reqs {
		if answered[i] {
			continue
		}
		answered[i] = a.admitOne(&reqs[i], &replies[i])
		if !answered[i] {
			keys = append(keys, reqs[i].Key())
		}
	}
	if len(keys) == 0 {
		return replies
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// states[j] is the state of keys[j] (see stateOf). The keys are locked
	// in order, so concurrent batches do not deadlock.
	states := make([]batchKey, len(keys))
	for j, k := range keys {
		states[j].lock = a.lockKey(k)
	}
	defer func() {
		for j := len(keys) - 1; j >= 0; j-- {
			a.unlockKey(keys[j], states[j].lock)
		}
	}()
	stateOf := func(k string) *batchKey { return &states[keyIndex(keys, k)] }

	for j, k := range keys {
		bk := &states[j]
		if st, ok := a.cache.get(k); ok {
			bk.st, bk.cached = st, true
			continue
		}
		st, err := a.store.Load(ctx, k)
		if err != nil {
			err = fmt.Errorf("synod: acceptor %s: load %q: %w", a.id, k, err)
		}
		bk.st, bk.err = st, err
	}
	for i := range reqs {
		r := &reqs[i]
		if answered[i] {
			continue
		}
		bk := stateOf(r.Key())
		if bk.err != nil {
			continue // filled in below
		}
		var changed bool
		switch r.Op {
		case OpPrepare:
			bk.st, replies[i].Prepare, changed = bk.st.Prepare(a.id, r.Prepare)
			if bk.cached {
				// A reply's value must not be the cache's: an in-process
				// caller may change it.
				replies[i].Prepare.Value = slices.Clone(replies[i].Prepare.Value)
			}
		case OpAccept:
			bk.st, replies[i].Accept, changed = bk.st.Accept(a.id, r.Accept)
		case OpRead:
			replies[i].Read = bk.st.Read(a.id, r.Read)
			if bk.cached {
				replies[i].Read.Value = slices.Clone(replies[i].Read.Value)
			}
		}
		bk.changed = bk.changed || changed
	}
	a.persist(ctx, keys, states)
	a.recache(keys, states)
	for i := range reqs {
		if answered[i] {
			continue
		}
		if bk := stateOf(reqs[i].Key()); bk.err != nil {
			replies[i] = BatchReply{Op: reqs[i].Op, Err: bk.err} // no reply for what is not durable
		}
	}
	return replies
}

// admitOne checks a valid request against the configuration served (the
// caller holds epochMu shared) and answers it if it must not reach its key:
// a stale epoch, or a ballot at or below the floor. It reports whether it did.
func (a *Acceptor) admitOne(r *BatchRequest, rep *BatchReply) bool {
	cfg := &a.cfg
	epoch := r.Epoch()
	// An acceptor removed from its configuration serves nobody: IDs never
	// rejoin (see the package doc, "Membership change").
	if epoch < cfg.Epoch || (cfg.Epoch > 0 && !cfg.Has(a.id)) {
		rep.Err = &StaleEpochError{Acceptor: a.id, Epoch: epoch, Config: cfg.Clone()}
		return true
	}
	switch r.Op {
	case OpPrepare:
		if b := r.Prepare.Ballot; b.Counter <= cfg.Floor {
			rep.Prepare = PrepareReply{From: a.id, Key: r.Prepare.Key, Ballot: b, Seen: a.floorBallot(cfg.Floor)}
			return true
		}
	case OpAccept:
		if b := r.Accept.Ballot; b.Counter <= cfg.Floor {
			rep.Accept = AcceptReply{From: a.id, Key: r.Accept.Key, Ballot: b, Seen: a.floorBallot(cfg.Floor)}
			return true
		}
	}
	return false
}

// persist stores the changed states of a batch (states[j] of keys[j]),
// recording store errors in states.
func (a *Acceptor) persist(ctx context.Context, keys []string, states []batchKey) {
	var changed []KeyState
	for j, k := range keys {
		if bk := &states[j]; bk.changed && bk.err == nil {
			changed = append(changed, KeyState{Key: k, State: bk.st})
		}
	}
	bs, batched := a.store.(BatchStorage)
	switch {
	case len(changed) == 0:
	case len(changed) > 1 && batched:
		err := bs.StoreBatch(ctx, changed)
		if be, ok := err.(*BatchError); ok && len(be.Errs) == len(changed) {
			// Some entries stored, others refused (a new key below the
			// space reserve, say): only the refused keys fail.
			for i, ks := range changed {
				if be.Errs[i] != nil {
					states[keyIndex(keys, ks.Key)].err = fmt.Errorf("synod: acceptor %s: store %q: %w", a.id, ks.Key, be.Errs[i])
				}
			}
			break
		}
		if err != nil {
			err = fmt.Errorf("synod: acceptor %s: store batch of %d: %w", a.id, len(changed), err)
			for _, ks := range changed {
				states[keyIndex(keys, ks.Key)].err = err
			}
		}
	default:
		for _, ks := range changed {
			if err := a.store.Store(ctx, ks.Key, ks.State); err != nil {
				states[keyIndex(keys, ks.Key)].err = fmt.Errorf("synod: acceptor %s: store %q: %w", a.id, ks.Key, err)
			}
		}
	}
}

// recache brings the state cache up to date after a batch, its keys still
// locked: a key that failed leaves it (a failed Store may or may not have
// reached the disk, and a refused one did not), a key stored or loaded
// enters it with its durable state. A state taken from the cache and left
// unchanged is there already.
func (a *Acceptor) recache(keys []string, states []batchKey) {
	if a.cache == nil {
		return
	}
	for j, k := range keys {
		switch bk := &states[j]; {
		case bk.err != nil:
			a.cache.drop(k)
		case bk.changed || !bk.cached:
			a.cache.put(k, bk.st)
		}
	}
}

// keyIndex returns the index of k in keys, sorted and holding k.
func keyIndex(keys []string, k string) int {
	j, _ := slices.BinarySearch(keys, k)
	return j
}
