package dedup

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrInvalid wraps every error decoding a Table or a wrapped value.
var ErrInvalid = errors.New("dedup: invalid record")

// ID identifies one change: a sender and its sequence number, or, with Seq
// zero, a one-shot ID named by Sender alone.
type ID struct {
	Sender string
	Seq    uint64
}

// IsZero reports whether id is the zero ID, which identifies nothing.
func (id ID) IsZero() bool { return id.Sender == "" && id.Seq == 0 }

// String returns the text form that ParseID reads: "~sender.seq" for a
// sequenced ID, the sender alone for a one-shot ID.
func (id ID) String() string {
	if id.Seq == 0 {
		return id.Sender
	}
	return "~" + id.Sender + "." + strconv.FormatUint(id.Seq, 10)
}

// ParseID reads an ID from its text form: "~" + sender + "." + a positive
// decimal number is a sequenced ID; any other text is a one-shot ID with
// that text as its sender.
func ParseID(s string) ID {
	if rest, ok := strings.CutPrefix(s, "~"); ok {
		if i := strings.LastIndexByte(rest, '.'); i > 0 {
			num := rest[i+1:]
			if n, err := strconv.ParseUint(num, 10, 64); err == nil && n > 0 && num[0] != '0' && num[0] != '+' {
				return ID{Sender: rest[:i], Seq: n}
			}
		}
	}
	return ID{Sender: s}
}

// Verdict is what a Table says about an ID.
type Verdict uint8

const (
	// Fresh: the change was not applied yet. Apply it and Record it.
	Fresh Verdict = iota
	// Replay: the change was applied; its recorded reply is its reply.
	Replay
	// Stale: the sender's last recorded change is a later one, so this one
	// was answered before (applied or refused); apply nothing.
	Stale
)

// String implements fmt.Stringer.
func (v Verdict) String() string {
	switch v {
	case Fresh:
		return "Fresh"
	case Replay:
		return "Replay"
	case Stale:
		return "Stale"
	}
	return "Verdict(?)"
}

// Entry is one sender's record: its last change's sequence number and reply,
// and the Table's clock when it was recorded (which orders eviction).
type Entry struct {
	Sender string
	Seq    uint64
	At     uint64
	Reply  []byte

	raw []byte // the entry's encoding, so a Table re-encodes by copying
}

// Table is the per-sender record of a register: at most one Entry per
// sender. A Table is a value that changes by copy: With returns a new Table
// and leaves the receiver (and its entries, which Tables share) unchanged.
// The zero Table is empty.
type Table struct {
	entries []*Entry // sorted by Sender
	clock   uint64   // the greatest At
}

// Len returns the number of entries.
func (t Table) Len() int { return len(t.entries) }

// Entries returns a copy of the entries, sorted by sender.
func (t Table) Entries() []Entry {
	out := make([]Entry, len(t.entries))
	for i, e := range t.entries {
		out[i] = *e
		out[i].raw = nil
	}
	return out
}

func (t Table) find(sender string) (int, bool) {
	return slices.BinarySearchFunc(t.entries, sender, func(e *Entry, s string) int { return strings.Compare(e.Sender, s) })
}

// Check returns the verdict on id and, for Replay, the recorded reply.
func (t Table) Check(id ID) (Verdict, []byte) {
	i, ok := t.find(id.Sender)
	if !ok {
		return Fresh, nil
	}
	e := t.entries[i]
	switch {
	case id.Seq == e.Seq:
		return Replay, e.Reply
	case id.Seq < e.Seq:
		return Stale, nil
	}
	return Fresh, nil
}

// With returns the table after recording reply as the reply of id, keeping
// at most limit entries (at least 1): when there are more, it evicts the
// entries recorded longest ago (smallest At, then smallest sender).
func (t Table) With(id ID, reply []byte, limit int) (Table, error) {
	e := &Entry{Sender: id.Sender, Seq: id.Seq, At: t.clock + 1, Reply: reply}
	if err := e.encode(); err != nil {
		return Table{}, err
	}
	out := Table{clock: e.At}
	i, found := t.find(id.Sender)
	out.entries = make([]*Entry, 0, len(t.entries)+1)
	out.entries = append(out.entries, t.entries[:i]...)
	out.entries = append(out.entries, e)
	if found {
		i++
	}
	out.entries = append(out.entries, t.entries[i:]...)
	if over := len(out.entries) - max(limit, 1); over > 0 {
		out.evict(over)
	}
	return out, nil
}

// evict drops the n entries recorded longest ago.
func (t *Table) evict(n int) {
	byAge := slices.Clone(t.entries)
	slices.SortFunc(byAge, func(a, b *Entry) int {
		if c := cmp.Compare(a.At, b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Sender, b.Sender)
	})
	gone := make(map[*Entry]bool, n)
	for _, e := range byAge[:n] {
		gone[e] = true
	}
	t.entries = slices.DeleteFunc(t.entries, func(e *Entry) bool { return gone[e] })
}

// encode caches the entry's msgpack encoding: [sender, seq, at, reply].
func (e *Entry) encode() error {
	var buf bytes.Buffer
	buf.Grow(24 + len(e.Sender) + len(e.Reply))
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	for _, err := range []error{
		enc.EncodeArrayLen(4),
		enc.EncodeString(e.Sender),
		enc.EncodeUint(e.Seq),
		enc.EncodeUint(e.At),
		enc.EncodeBytes(e.Reply),
	} {
		if err != nil {
			return err
		}
	}
	e.raw = buf.Bytes()
	return nil
}

// EncodedLen returns the length of the table's encoding.
func (t Table) EncodedLen() int {
	n := 5
	for _, e := range t.entries {
		n += len(e.raw)
	}
	return n
}

// Encode writes the table to enc as a msgpack array of entries, each
// [sender str, seq uint, at uint, reply bin], sorted by sender. Entries are
// copied from their cached encodings.
func (t Table) Encode(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(len(t.entries)); err != nil {
		return err
	}
	w := enc.Writer()
	for _, e := range t.entries {
		if e.raw == nil {
			if err := e.encode(); err != nil {
				return err
			}
		}
		if _, err := w.Write(e.raw); err != nil {
			return err
		}
	}
	return nil
}

// Decode reads a table that Encode wrote. bytesLeft, the bytes that remain
// in dec's input, bounds how many entries it accepts.
// Entries must be sorted by sender with no duplicates, and have a sender.
func Decode(dec *msgpack.Decoder, bytesLeft int) (Table, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return Table{}, fmt.Errorf("%w: table: %v", ErrInvalid, err)
	}
	if n < 0 {
		return Table{}, nil // nil array
	}
	if n > bytesLeft {
		return Table{}, fmt.Errorf("%w: table of %d entries in %d bytes", ErrInvalid, n, bytesLeft)
	}
	t := Table{entries: make([]*Entry, 0, n)}
	for i := range n {
		raw, err := dec.DecodeRaw()
		if err != nil {
			return Table{}, fmt.Errorf("%w: table entry %d: %v", ErrInvalid, i, err)
		}
		e, err := decodeEntry(raw)
		if err != nil {
			return Table{}, fmt.Errorf("%w: table entry %d: %v", ErrInvalid, i, err)
		}
		if i > 0 && t.entries[i-1].Sender >= e.Sender {
			return Table{}, fmt.Errorf("%w: table entry %d: sender %q out of order", ErrInvalid, i, e.Sender)
		}
		t.entries = append(t.entries, e)
		t.clock = max(t.clock, e.At)
	}
	return t, nil
}

func decodeEntry(raw []byte) (*Entry, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n != 4 {
		return nil, fmt.Errorf("%d fields, want 4", n)
	}
	e := &Entry{raw: slices.Clone(raw)}
	if e.Sender, err = dec.DecodeString(); err != nil {
		return nil, err
	}
	if e.Sender == "" {
		return nil, errors.New("empty sender")
	}
	if e.Seq, err = dec.DecodeUint64(); err != nil {
		return nil, err
	}
	if e.At, err = dec.DecodeUint64(); err != nil {
		return nil, err
	}
	if e.Reply, err = dec.DecodeBytes(); err != nil {
		return nil, err
	}
	return e, nil
}

// FromOneShot returns a Table holding one-shot entries for the given IDs and
// replies, oldest first, as a register written before per-sender records
// kept them (a window of recent IDs). Later IDs of the same name replace
// earlier ones.
func FromOneShot(ids []string, replies [][]byte) (Table, error) {
	var t Table
	var err error
	for i, id := range ids {
		if id == "" {
			return Table{}, fmt.Errorf("%w: empty ID", ErrInvalid)
		}
		if t, err = t.With(ID{Sender: id}, replies[i], len(ids)); err != nil {
			return Table{}, err
		}
	}
	return t, nil
}
