package actors

import (
	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/synod/dedup"
)

// RegisterValue is the value of an actor's register, decoded for tools that
// show it (such as `synod read --decode`). Use DecodeRegisterValue.
type RegisterValue struct {
	// EnvelopeVersion is the value's format: 1 (a window of request IDs) or
	// 2 (one entry per sender). Empty registers have 0.
	EnvelopeVersion int
	// Codec names the codec that encoded State ("msgpack", "protobuf").
	Codec string
	// Version counts the commits that changed the state (State.Version).
	Version uint64
	// State is the encoded state; empty until a handler first succeeded.
	State []byte
	// Senders are the recorded requests, one per sender, sorted by sender.
	Senders []SenderRecord
}

// SenderRecord is one sender's last recorded request and the reply the actor
// gave it.
type SenderRecord struct {
	// ID is the request ID as sent (see WithRequestID).
	ID string
	// Sender and Seq split a sequenced ID; Seq is 0 for a one-shot ID.
	Sender string
	Seq    uint64
	// Reply is the recorded reply, decoded; an *ErrorReply with code
	// INVALID when its type is not linked into this binary.
	Reply proto.Message
}

// DecodeRegisterValue decodes an actor register's value, in either envelope
// version. A nil or empty value is an empty register. Errors match
// ErrInvalid.
func DecodeRegisterValue(b []byte) (RegisterValue, error) {
	e, err := decodeEnvelope(b)
	if err != nil {
		return RegisterValue{}, err
	}
	v := RegisterValue{EnvelopeVersion: int(e.version), Codec: e.Codec, Version: e.Seq, State: e.State}
	for _, en := range e.Senders.Entries() {
		id := dedup.ID{Sender: en.Sender, Seq: en.Seq}.String()
		v.Senders = append(v.Senders, SenderRecord{ID: id, Sender: en.Sender, Seq: en.Seq, Reply: decodeReply(id, en.Reply)})
	}
	return v, nil
}
