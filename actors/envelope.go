package actors

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// envelopeVersion is the version of the register value's format.
const envelopeVersion = 1

// envelope is the value of an actor's register, msgpack-encoded as an array
// with its version first.
type envelope struct {
	_msgpack struct{} `msgpack:",as_array"`
	// Version is envelopeVersion.
	Version uint8
	// Codec names the codec that encoded State.
	Codec string
	// Seq counts the commits that changed the register.
	Seq uint64
	// State is the encoded state; empty until a handler first succeeds.
	State []byte
	// Writer and Run identify the change-function run that produced this
	// value (a random activation ID and a counter), so that the activation
	// can tell which of its runs a quorum accepted.
	Writer uint64
	Run    uint64
	// Recent holds the latest requests with IDs and their replies, oldest
	// first, at most the dedup window.
	Recent []*entry
}

// entry is a request ID and the reply the actor gave it. Entries are never
// modified once built (and encoded), so envelopes share them.
type entry struct {
	_msgpack struct{} `msgpack:",as_array"`
	ID       string
	Type     string // the reply's protobuf full name
	Reply    []byte // the reply, protobuf-encoded

	raw []byte // the entry's own encoding, kept so the window re-encodes by copying
}

func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) == 0 {
		return envelope{Version: envelopeVersion}, nil
	}
	if err := msgpack.Unmarshal(b, &e); err != nil {
		return envelope{}, fmt.Errorf("%w: decode register value: %v", ErrInvalid, err)
	}
	if e.Version != envelopeVersion {
		return envelope{}, fmt.Errorf("%w: register value version %d, want %d", ErrInvalid, e.Version, envelopeVersion)
	}
	for i := range e.Recent {
		if e.Recent[i] == nil {
			// msgpack decodes a nil array element to a nil pointer.
			return envelope{}, fmt.Errorf("%w: register value: window entry %d is nil", ErrInvalid, i)
		}
		if err := e.Recent[i].encode(); err != nil {
			return envelope{}, fmt.Errorf("%w: re-encode window entry: %v", ErrInvalid, err)
		}
	}
	return e, nil
}

// encodeEnvelope encodes e as the msgpack array that decodeEnvelope reads.
// It writes the window's entries from their cached encodings, so that a
// change costs a copy of the window rather than a reflective re-encoding.
func encodeEnvelope(e *envelope) ([]byte, error) {
	e.Version = envelopeVersion
	size := 64 + len(e.Codec) + len(e.State)
	for i := range e.Recent {
		if e.Recent[i].raw == nil {
			if err := e.Recent[i].encode(); err != nil {
				return nil, err
			}
		}
		size += len(e.Recent[i].raw)
	}
	var buf bytes.Buffer
	buf.Grow(size)
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	for _, err := range []error{
		enc.EncodeArrayLen(7),
		enc.EncodeUint(uint64(e.Version)),
		enc.EncodeString(e.Codec),
		enc.EncodeUint(e.Seq),
		enc.EncodeBytes(e.State),
		enc.EncodeUint(e.Writer),
		enc.EncodeUint(e.Run),
		enc.EncodeArrayLen(len(e.Recent)),
	} {
		if err != nil {
			return nil, err
		}
	}
	for i := range e.Recent {
		buf.Write(e.Recent[i].raw)
	}
	return buf.Bytes(), nil
}

// encode caches the entry's encoding in raw.
func (e *entry) encode() error {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, err := range []error{
		enc.EncodeArrayLen(3),
		enc.EncodeString(e.ID),
		enc.EncodeString(e.Type),
		enc.EncodeBytes(e.Reply),
	} {
		if err != nil {
			return err
		}
	}
	e.raw = buf.Bytes()
	return nil
}

// newEntry records reply as the reply to request id.
func newEntry(id string, reply proto.Message) (*entry, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(reply)
	if err != nil {
		return nil, fmt.Errorf("%w: encode reply %T: %v", ErrInvalid, reply, err)
	}
	e := &entry{ID: id, Type: string(reply.ProtoReflect().Descriptor().FullName()), Reply: b}
	return e, e.encode()
}

// reply decodes the recorded reply. Its type must be linked into the binary
// (registered in protoregistry.GlobalTypes); otherwise the caller gets an
// ErrorReply saying so.
func (e *entry) reply() proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(e.Type))
	if err != nil {
		return &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("actors: recorded reply to %s: unknown type %q", e.ID, e.Type)}
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(e.Reply, m); err != nil {
		return &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("actors: recorded reply to %s: %v", e.ID, err)}
	}
	return m
}

// window is a decoded register value kept by an activation: the envelope of
// the bytes it last saw, with an index of its request IDs. It is only a
// memo of decodeEnvelope(raw), used only for exactly those bytes, so it can
// never be stale. It is used by one round at a time.
type window struct {
	raw   []byte
	env   envelope
	index map[string]*entry // request ID -> its entry in env.Recent
}

// load returns the decoded envelope of b, from the memo if b is what it
// holds. The caller must not modify what it returns.
func (w *window) load(b []byte) (*envelope, map[string]*entry, error) {
	if w.index != nil && string(w.raw) == string(b) {
		return &w.env, w.index, nil
	}
	e, err := decodeEnvelope(b)
	if err != nil {
		return nil, nil, err
	}
	idx := make(map[string]*entry, len(e.Recent))
	for _, r := range e.Recent {
		idx[r.ID] = r
	}
	w.raw, w.env, w.index = b, e, idx
	return &w.env, w.index, nil
}

// committed makes the memo hold raw, the encoding of e, which a change
// function run computed from base by adding the entries added and dropping
// the IDs trimmed, and which the register now holds.
func (w *window) committed(base, raw []byte, e envelope, added []*entry, trimmed []string) {
	if w.index == nil || string(w.raw) != string(base) {
		w.index = make(map[string]*entry, len(e.Recent))
		for _, r := range e.Recent {
			w.index[r.ID] = r
		}
	} else {
		for _, id := range trimmed {
			delete(w.index, id)
		}
		for _, r := range added {
			w.index[r.ID] = r
		}
	}
	w.raw, w.env = raw, e
}
