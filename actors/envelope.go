package actors

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/protosynod/protosynod/synod/dedup"
)

// Envelope versions. Version 1 kept a window of the latest request IDs with
// their replies; version 2 keeps one entry per sender (dedup.Table). Both
// decode; only version 2 is written.
const (
	envelopeV1      = 1
	envelopeVersion = 2
)

// envelope is the value of an actor's register, msgpack-encoded as an array
// with its version first:
//
//	[2, codec str, seq uint, state bin, writer uint, run uint, senders]
//
// where senders is a dedup.Table whose replies are protobuf-encoded
// google.protobuf.Any messages. Version 1 had, in place of senders, the
// window [[id str, type str, reply bin], ...], oldest first.
type envelope struct {
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
	// Senders records, per sender of requests with IDs, its last request
	// and the reply the actor gave it.
	Senders dedup.Table

	version uint8 // the version it was decoded from; not encoded
}

// envelopeV1Layout is the version 1 envelope, decoded only.
type envelopeV1Layout struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Codec    string
	Seq      uint64
	State    []byte
	Writer   uint64
	Run      uint64
	Recent   []*entryV1
}

// entryV1 is a version 1 window entry: a request ID and the reply the actor
// gave it.
type entryV1 struct {
	_msgpack struct{} `msgpack:",as_array"`
	ID       string
	Type     string // the reply's protobuf full name
	Reply    []byte // the reply, protobuf-encoded
}

func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) == 0 {
		return envelope{}, nil
	}
	rd := bytes.NewReader(b)
	dec := msgpack.NewDecoder(rd)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return envelope{}, fmt.Errorf("%w: decode register value: %v", ErrInvalid, err)
	}
	if n < 1 {
		return envelope{}, fmt.Errorf("%w: decode register value: %d fields", ErrInvalid, n)
	}
	v, err := dec.DecodeUint64()
	if err != nil {
		return envelope{}, fmt.Errorf("%w: decode register value: version: %v", ErrInvalid, err)
	}
	switch v {
	case envelopeV1:
		return decodeEnvelopeV1(b)
	case envelopeVersion:
	default:
		return envelope{}, fmt.Errorf("%w: register value version %d, want %d or %d", ErrInvalid, v, envelopeV1, envelopeVersion)
	}
	if n != 7 {
		return envelope{}, fmt.Errorf("%w: register value version 2 with %d fields, want 7", ErrInvalid, n)
	}
	e := envelope{version: envelopeVersion}
	if e.Codec, err = dec.DecodeString(); err == nil {
		if e.Seq, err = dec.DecodeUint64(); err == nil {
			if e.State, err = dec.DecodeBytes(); err == nil {
				if e.Writer, err = dec.DecodeUint64(); err == nil {
					e.Run, err = dec.DecodeUint64()
				}
			}
		}
	}
	if err != nil {
		return envelope{}, fmt.Errorf("%w: decode register value: %v", ErrInvalid, err)
	}
	if e.Senders, err = dedup.Decode(dec, rd.Len()); err != nil {
		return envelope{}, fmt.Errorf("%w: register value: %w", ErrInvalid, err)
	}
	if rd.Len() != 0 {
		return envelope{}, fmt.Errorf("%w: register value: %d trailing bytes", ErrInvalid, rd.Len())
	}
	return e, nil
}

// decodeEnvelopeV1 reads a version 1 envelope: its window becomes one-shot
// entries of the senders table, oldest first, so that a request retried
// with an ID recorded by an older activation still gets its reply.
func decodeEnvelopeV1(b []byte) (envelope, error) {
	var old envelopeV1Layout
	if err := msgpack.Unmarshal(b, &old); err != nil {
		return envelope{}, fmt.Errorf("%w: decode register value: %v", ErrInvalid, err)
	}
	e := envelope{Codec: old.Codec, Seq: old.Seq, State: old.State, Writer: old.Writer, Run: old.Run, version: envelopeV1}
	ids := make([]string, len(old.Recent))
	replies := make([][]byte, len(old.Recent))
	for i, r := range old.Recent {
		if r == nil {
			// msgpack decodes a nil array element to a nil pointer.
			return envelope{}, fmt.Errorf("%w: register value: window entry %d is nil", ErrInvalid, i)
		}
		rep, err := anyReply(r.Type, r.Reply)
		if err != nil {
			return envelope{}, fmt.Errorf("%w: register value: window entry %d: %v", ErrInvalid, i, err)
		}
		ids[i], replies[i] = r.ID, rep
	}
	var err error
	if e.Senders, err = dedup.FromOneShot(ids, replies); err != nil {
		return envelope{}, fmt.Errorf("%w: register value: %w", ErrInvalid, err)
	}
	return e, nil
}

// encodeEnvelope encodes e as a version 2 envelope. The senders table is
// written from its entries' cached encodings, so a change costs a copy of
// the table rather than a reflective re-encoding.
func encodeEnvelope(e *envelope) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(48 + len(e.Codec) + len(e.State) + e.Senders.EncodedLen())
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	for _, err := range []error{
		enc.EncodeArrayLen(7),
		enc.EncodeUint(envelopeVersion),
		enc.EncodeString(e.Codec),
		enc.EncodeUint(e.Seq),
		enc.EncodeBytes(e.State),
		enc.EncodeUint(e.Writer),
		enc.EncodeUint(e.Run),
		e.Senders.Encode(enc),
	} {
		if err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

const typeURLPrefix = "type.googleapis.com/"

// anyReply encodes a reply of the named type, protobuf-encoded as b, as a
// google.protobuf.Any: the form the senders table records.
func anyReply(typeName string, b []byte) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&anypb.Any{TypeUrl: typeURLPrefix + typeName, Value: b})
}

// encodeReply records reply as the senders table keeps it.
func encodeReply(reply proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(reply)
	if err != nil {
		return nil, fmt.Errorf("%w: encode reply %T: %v", ErrInvalid, reply, err)
	}
	return anyReply(string(reply.ProtoReflect().Descriptor().FullName()), b)
}

// decodeReply decodes a recorded reply to request id. Its type must be
// linked into the binary (registered in protoregistry.GlobalTypes);
// otherwise the caller gets an ErrorReply saying so.
func decodeReply(id string, b []byte) proto.Message {
	var a anypb.Any
	if err := proto.Unmarshal(b, &a); err != nil {
		return &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("actors: recorded reply to %s: %v", id, err)}
	}
	name := protoreflect.FullName(a.TypeUrl)
	if i := bytes.LastIndexByte([]byte(a.TypeUrl), '/'); i >= 0 {
		name = protoreflect.FullName(a.TypeUrl[i+1:])
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("actors: recorded reply to %s: unknown type %q", id, name)}
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(a.Value, m); err != nil {
		return &ErrorReply{Code: ErrorCode_ERROR_CODE_INVALID,
			Message: fmt.Sprintf("actors: recorded reply to %s: %v", id, err)}
	}
	return m
}

// memo is a decoded register value kept by an activation: the envelope of
// the bytes it last saw. It is only a memo of decodeEnvelope(raw), used only
// for exactly those bytes, so it can never be stale. It is used by one round
// at a time.
type memo struct {
	raw []byte
	env envelope
	ok  bool
}

// load returns the decoded envelope of b, from the memo if b is what it
// holds. The caller must not modify what it returns.
func (m *memo) load(b []byte) (*envelope, error) {
	if m.ok && string(m.raw) == string(b) {
		return &m.env, nil
	}
	e, err := decodeEnvelope(b)
	if err != nil {
		return nil, err
	}
	m.raw, m.env, m.ok = b, e, true
	return &m.env, nil
}

// committed makes the memo hold raw, the encoding of e, which the register
// now holds.
func (m *memo) committed(raw []byte, e envelope) { m.raw, m.env, m.ok = raw, e, true }
