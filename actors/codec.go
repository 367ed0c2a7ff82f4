package actors

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
)

// Codec encodes an actor's state for its register. Encoding must be
// deterministic (equal states give equal bytes): the actor compares encodings
// to skip writing a state that did not change.
type Codec interface {
	// Name identifies the codec. It is stored in the register, so that a
	// state is never decoded by another codec than the one that wrote it.
	Name() string
	// Marshal encodes the state v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a state variable. It
	// allocates what v's variable points to when that is a nil pointer.
	Unmarshal(data []byte, v any) error
}

// Msgpack returns the codec the actors package uses for states that are not
// protobuf messages: msgpack (github.com/vmihailenco/msgpack/v5), with
// sorted map keys so that encodings are deterministic. Exported fields are
// encoded by name, so fields may be added to a state type later.
func Msgpack() Codec { return msgpackCodec{} }

// Protobuf returns the codec the actors package uses for states that are
// protobuf messages (S a pointer to a generated message type): deterministic
// binary protobuf.
func Protobuf() Codec { return protoCodec{} }

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "msgpack" }

func (msgpackCodec) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (msgpackCodec) Unmarshal(data []byte, v any) error { return msgpack.Unmarshal(data, v) }

type protoCodec struct{}

func (protoCodec) Name() string { return "protobuf" }

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("protobuf codec: %T is not a proto.Message", v)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	// v is a *S with S a pointer to a message type: allocate the message.
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Pointer {
		return fmt.Errorf("protobuf codec: cannot decode into %T", v)
	}
	nv := reflect.New(rv.Elem().Type().Elem())
	m, ok := nv.Interface().(proto.Message)
	if !ok {
		return fmt.Errorf("protobuf codec: %s is not a proto.Message", nv.Type())
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return err
	}
	rv.Elem().Set(nv)
	return nil
}

// isProto reports whether S is a protobuf message type.
func isProto[S any]() bool {
	var zero S
	_, ok := any(zero).(proto.Message)
	return ok
}

// newState returns the state of an actor whose register is empty: the zero
// S, or for a pointer type a pointer to a new zero value (an empty message
// for protobuf states), so that handlers never receive a nil pointer.
func newState[S any]() S {
	var s S
	if t := reflect.TypeFor[S](); t.Kind() == reflect.Pointer {
		s = reflect.New(t.Elem()).Interface().(S)
	}
	return s
}

// decodeState decodes data (empty for an empty register) with c.
func decodeState[S any](c Codec, data []byte) (S, error) {
	if len(data) == 0 {
		return newState[S](), nil
	}
	var s S
	if err := c.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%w: decode %s state: %v", ErrInvalid, c.Name(), err)
	}
	return s, nil
}
