package dedup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/protosynod/protosynod/synod"
)

// wrapVersion is the version of a wrapped register value: msgpack
// [version, table, value bin|nil].
const wrapVersion = 1

var (
	// ErrApplied is the error a Wrap change function returns for an ID that
	// was applied before: synod writes the value back unchanged, and
	// Client.Change reports a Result with Replayed set.
	ErrApplied = errors.New("dedup: change already applied")

	// ErrStale is the error of a change whose sender has a later change
	// recorded: it was answered before, and is not applied now. A sender that
	// resolves each change before its next never sees it.
	ErrStale = errors.New("dedup: a later change of this sender was recorded")
)

// Unwrap splits a wrapped register value into the caller's value and the
// Table. An empty register is a nil value and an empty Table.
func Unwrap(raw []byte) ([]byte, Table, error) {
	if len(raw) == 0 {
		return nil, Table{}, nil
	}
	rd := bytes.NewReader(raw)
	dec := msgpack.NewDecoder(rd)
	n, err := dec.DecodeArrayLen()
	if err != nil || n != 3 {
		return nil, Table{}, fmt.Errorf("%w: wrapped value: not a 3-element array (%d, %v)", ErrInvalid, n, err)
	}
	v, err := dec.DecodeUint64()
	if err != nil || v != wrapVersion {
		return nil, Table{}, fmt.Errorf("%w: wrapped value: version %d (%v), want %d", ErrInvalid, v, err, wrapVersion)
	}
	t, err := Decode(dec, rd.Len())
	if err != nil {
		return nil, Table{}, err
	}
	value, err := dec.DecodeBytes()
	if err != nil {
		return nil, Table{}, fmt.Errorf("%w: wrapped value: %v", ErrInvalid, err)
	}
	if rd.Len() != 0 {
		return nil, Table{}, fmt.Errorf("%w: wrapped value: trailing bytes", ErrInvalid)
	}
	return value, t, nil
}

// wrap encodes a wrapped register value.
func wrap(t Table, value []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(8 + t.EncodedLen() + len(value))
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.EncodeArrayLen(3); err != nil {
		return nil, err
	}
	if err := enc.EncodeUint(wrapVersion); err != nil {
		return nil, err
	}
	if err := t.Encode(enc); err != nil {
		return nil, err
	}
	if err := enc.EncodeBytes(value); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Wrap returns a synod.ChangeFunc that applies f at most once per id to a
// register whose value is wrapped (the caller's value and a Table, see
// Unwrap), keeping at most limit senders. For a fresh id it runs f on the
// caller's value and records id with an empty reply; f's error leaves the
// register unchanged and records nothing. For an id applied before it
// returns an error matching ErrApplied, for one older than its sender's last
// ErrStale: synod then writes the value back unchanged, which is never
// indeterminate. It is pure, like every change function.
func Wrap(id ID, f synod.ChangeFunc, limit int) synod.ChangeFunc {
	return func(cur []byte) ([]byte, error) {
		value, t, err := Unwrap(cur)
		if err != nil {
			return nil, err
		}
		switch v, _ := t.Check(id); v {
		case Replay:
			return nil, fmt.Errorf("%w: %s", ErrApplied, id)
		case Stale:
			return nil, fmt.Errorf("%w: %s", ErrStale, id)
		}
		next, err := f(value)
		if err != nil {
			return nil, err
		}
		if t, err = t.With(id, nil, limit); err != nil {
			return nil, err
		}
		return wrap(t, next)
	}
}

// Registers is what Client needs of a register store; *synod.Client
// implements it.
type Registers interface {
	Change(ctx context.Context, key string, f synod.ChangeFunc) ([]byte, error)
	Read(ctx context.Context, key string) ([]byte, error)
}

var _ Registers = (*synod.Client)(nil)

// DefaultLimit is how many senders a register remembers by default.
const DefaultLimit = 256

// Client runs exactly-once changes of registers through a raw synod.Client:
// the opt-in for users who do not use package actors. A register changed
// through a Client holds a wrapped value (see Wrap): read it with
// Client.Read, and change it only through Clients.
type Client struct {
	reg     Registers
	limit   int
	attempt time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithLimit sets how many senders each register remembers (default
// DefaultLimit). A retry after more than n other senders changed the
// register may apply again.
func WithLimit(n int) Option { return func(c *Client) { c.limit = n } }

// WithAttemptTimeout bounds each attempt of a Change (default: none, an
// attempt lasts as long as the Change's context): an attempt still
// undecided after d is retried with the same ID.
func WithAttemptTimeout(d time.Duration) Option { return func(c *Client) { c.attempt = d } }

// NewClient returns a Client over reg.
func NewClient(reg Registers, opts ...Option) (*Client, error) {
	c := &Client{reg: reg, limit: DefaultLimit}
	for _, o := range opts {
		o(c)
	}
	switch {
	case reg == nil:
		return nil, fmt.Errorf("%w: dedup: nil Registers", synod.ErrInvalidConfig)
	case c.limit < 1:
		return nil, fmt.Errorf("%w: dedup: limit %d < 1", synod.ErrInvalidConfig, c.limit)
	}
	return c, nil
}

// Result is the outcome of a Client.Change.
type Result struct {
	// Value is the register's value after the change: the value f returned,
	// or, when Replayed, the register's current value.
	Value []byte
	// Replayed means an earlier attempt with the same ID had applied the
	// change; f did not run again.
	Replayed bool
}

// Change applies f to the register key exactly once for id: after an
// indeterminate outcome, a conflict or an unavailable quorum it tries again
// with the same id until ctx ends, and a retry that finds the change applied
// reports Replayed instead of applying it again. f's own error is returned
// as is (the register is unchanged). It ends with an error matching
// synod.ErrIndeterminate only when ctx ended while the outcome was unknown:
// then call Change again with the same id, before the sender's next change,
// to learn it.
func (c *Client) Change(ctx context.Context, key string, id ID, f synod.ChangeFunc) (Result, error) {
	if id.IsZero() {
		return Result{}, fmt.Errorf("%w: dedup: change %q: zero ID", synod.ErrInvalidRequest, key)
	}
	wf := Wrap(id, f, c.limit)
	backoff := time.Millisecond
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if c.attempt > 0 {
			actx, cancel = context.WithTimeout(ctx, c.attempt)
		}
		raw, err := c.reg.Change(actx, key, wf)
		cancel()
		switch {
		case err == nil:
			value, _, err := Unwrap(raw)
			return Result{Value: value}, err
		case errors.Is(err, ErrApplied):
			value, _, err := Unwrap(raw)
			return Result{Value: value, Replayed: true}, err
		case !retryable(err) || ctx.Err() != nil:
			return Result{}, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

func retryable(err error) bool {
	return errors.Is(err, synod.ErrIndeterminate) || errors.Is(err, synod.ErrConflict) || errors.Is(err, synod.ErrUnavailable)
}

// Delete removes the register key for good: it writes the register's
// tombstone, the empty value, with no Table, so the acceptors drop the key
// at the next garbage collection (synod.Reconfigurer.CollectGarbage). A
// change whose value is empty keeps its Table in the register, which is
// then not deleted. Having no Table, the register no longer knows which
// changes it applied: a retry of a change from before the delete applies
// again. Writing a tombstone twice is harmless, so after an error matching
// synod.ErrIndeterminate call Delete again.
func (c *Client) Delete(ctx context.Context, key string) error {
	var err error
	if d, ok := c.reg.(interface {
		Delete(context.Context, string) error
	}); ok {
		err = d.Delete(ctx, key) // synod.Client's: it also guards reserved keys
	} else {
		_, err = c.reg.Change(ctx, key, func([]byte) ([]byte, error) { return nil, nil })
	}
	if err != nil {
		return fmt.Errorf("dedup: delete %q: %w", key, err)
	}
	return nil
}

// Read returns the caller's value of the register key (see synod.Client.Read).
func (c *Client) Read(ctx context.Context, key string) ([]byte, error) {
	raw, err := c.reg.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	value, _, err := Unwrap(raw)
	return value, err
}

// Sender makes sequenced IDs: a random sender name and a counter. Use one
// Sender per goroutine (or per chain of changes that resolve one at a time):
// it must not have two changes of one register in flight.
type Sender struct {
	name string
	seq  atomic.Uint64
}

// NewSender returns a Sender with a fresh random name.
func NewSender() *Sender {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &Sender{name: base64.RawURLEncoding.EncodeToString(b[:])}
}

// NewSenderNamed returns a Sender named name, whose IDs start after seq: a
// sender that persists its name and counter can resume after a restart.
func NewSenderNamed(name string, seq uint64) *Sender {
	s := &Sender{name: name}
	s.seq.Store(seq)
	return s
}

// Name returns the sender's name.
func (s *Sender) Name() string { return s.name }

// Next returns the sender's next ID.
func (s *Sender) Next() ID { return ID{Sender: s.name, Seq: s.seq.Add(1)} }
