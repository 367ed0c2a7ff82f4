package persistence

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustAny(t testing.TB, s string) []byte {
	t.Helper()
	b, err := marshalAny(wrapperspb.String(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	a, b, c := mustAny(t, "a"), mustAny(t, "b"), mustAny(t, "c")
	tests := []struct {
		name string
		r    record
	}{
		{"empty", record{}},
		{"events only", record{nextIndex: 2, events: [][]byte{a, b}}},
		{"snapshot at zero", record{hasSnapshot: true, snapshot: c, nextIndex: 1, events: [][]byte{a}}},
		{"snapshot and events", record{hasSnapshot: true, snapshot: c, snapshotIndex: 7, nextIndex: 9, events: [][]byte{a, b}}},
		{"snapshot only", record{hasSnapshot: true, snapshot: c, snapshotIndex: 1 << 40, nextIndex: 1 << 40}},
		{"empty snapshot bytes", record{hasSnapshot: true, snapshot: []byte{}, snapshotIndex: 3, nextIndex: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.r.encode()
			if got, want := len(enc), tt.r.size(); got != want {
				t.Errorf("len(encode()) = %d, size() = %d", got, want)
			}
			got, err := decodeRecord(enc)
			if err != nil {
				t.Fatalf("decodeRecord: %v", err)
			}
			if !recordsEqual(got, tt.r) {
				t.Errorf("got %+v, want %+v", got, tt.r)
			}
		})
	}
}

// recordsEqual compares records, treating nil and empty byte slices alike.
func recordsEqual(a, b record) bool {
	if a.hasSnapshot != b.hasSnapshot || a.snapshotIndex != b.snapshotIndex || a.nextIndex != b.nextIndex ||
		!bytes.Equal(a.snapshot, b.snapshot) || len(a.events) != len(b.events) {
		return false
	}
	for i := range a.events {
		if !bytes.Equal(a.events[i], b.events[i]) {
			return false
		}
	}
	return true
}

func TestDecodeRecordRejectsCorrupt(t *testing.T) {
	a := mustAny(t, "a")
	enc := func(fields ...func([]byte) []byte) []byte {
		var b []byte
		for _, f := range fields {
			b = f(b)
		}
		return b
	}
	varint := func(num protowire.Number, v uint64) func([]byte) []byte {
		return func(b []byte) []byte {
			return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
		}
	}
	bytesField := func(num protowire.Number, v []byte) func([]byte) []byte {
		return func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
		}
	}
	v1 := varint(fieldVersion, recordVersion)
	tests := []struct {
		name string
		in   []byte
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"no version", enc(varint(fieldNextIndex, 0))},
		{"version 2", enc(varint(fieldVersion, 2))},
		{"version twice", enc(v1, v1)},
		{"truncated bytes", enc(v1, bytesField(fieldEvents, a))[:10]},
		{"wrong wire type", enc(v1, bytesField(fieldNextIndex, a))},
		{"events without next index", enc(v1, bytesField(fieldEvents, a))},
		{"next index without events", enc(v1, varint(fieldNextIndex, 1))},
		{"snapshot index without snapshot", enc(v1, varint(fieldSnapshotIndex, 1), varint(fieldNextIndex, 1))},
		{"snapshot index beyond next", enc(v1, bytesField(fieldSnapshot, a), varint(fieldSnapshotIndex, 2), varint(fieldNextIndex, 1))},
		{"huge index", enc(v1, bytesField(fieldSnapshot, a), varint(fieldSnapshotIndex, 1<<63), varint(fieldNextIndex, 1<<63))},
		{"two snapshots", enc(v1, bytesField(fieldSnapshot, a), bytesField(fieldSnapshot, a))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decodeRecord(tt.in)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeRecord = %+v, %v; want ErrCorrupt", r, err)
			}
		})
	}
	// Unknown fields are skipped, as protobuf does.
	r, err := decodeRecord(enc(v1, bytesField(99, []byte("future")), varint(fieldNextIndex, 1), bytesField(fieldEvents, a)))
	if err != nil || r.nextIndex != 1 || len(r.events) != 1 {
		t.Fatalf("record with an unknown field: %+v, %v", r, err)
	}
}

// recordDescriptor builds record.proto's Record message as a descriptor.
func recordDescriptor(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	field := func(name string, num int32, label *descriptorpb.FieldDescriptorProto_Label,
		typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Label: label, Type: typ.Enum()}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("protosynod/persistence/record.proto"),
		Package:    proto.String("protosynod.persistence.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/any.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Record"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("version", 1, opt, descriptorpb.FieldDescriptorProto_TYPE_UINT32, ""),
				field("snapshot", 2, opt, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Any"),
				field("snapshot_index", 3, opt, descriptorpb.FieldDescriptorProto_TYPE_UINT64, ""),
				field("next_index", 4, opt, descriptorpb.FieldDescriptorProto_TYPE_UINT64, ""),
				field("events", 5, rep, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Any"),
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("Record")
}

// TestRecordMatchesSchema checks the hand-written encoding against
// record.proto: protobuf decodes our bytes into the schema's fields, and
// proto.Marshal of the schema's message yields exactly our bytes.
func TestRecordMatchesSchema(t *testing.T) {
	md := recordDescriptor(t)
	a, b, s := wrapperspb.String("a"), wrapperspb.String("b"), wrapperspb.Int64(42)
	r := record{hasSnapshot: true, snapshot: mustMarshal(t, s), snapshotIndex: 5, nextIndex: 7,
		events: [][]byte{mustMarshal(t, a), mustMarshal(t, b)}}
	ours := r.encode()

	dm := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(ours, dm); err != nil {
		t.Fatalf("protobuf cannot decode our record: %v", err)
	}
	fields := md.Fields()
	if got := dm.Get(fields.ByName("version")).Uint(); got != recordVersion {
		t.Errorf("version = %d, want %d", got, recordVersion)
	}
	if got := dm.Get(fields.ByName("snapshot_index")).Uint(); got != 5 {
		t.Errorf("snapshot_index = %d, want 5", got)
	}
	if got := dm.Get(fields.ByName("next_index")).Uint(); got != 7 {
		t.Errorf("next_index = %d, want 7", got)
	}
	if got := dm.Get(fields.ByName("events")).List().Len(); got != 2 {
		t.Errorf("len(events) = %d, want 2", got)
	}
	snapBytes, err := proto.Marshal(dm.Get(fields.ByName("snapshot")).Message().Interface())
	if err != nil {
		t.Fatal(err)
	}
	var snap anypb.Any
	if err := proto.Unmarshal(snapBytes, &snap); err != nil {
		t.Fatal(err)
	}
	if got, err := snap.UnmarshalNew(); err != nil || !proto.Equal(got, s) {
		t.Errorf("snapshot = %v, %v; want %v", got, err, s)
	}

	theirs, err := proto.MarshalOptions{Deterministic: true}.Marshal(dm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(theirs, ours) {
		t.Errorf("proto.Marshal of the schema message differs from our encoding:\n got %x\nwant %x", theirs, ours)
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := marshalAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAnyCodecErrors(t *testing.T) {
	if _, err := marshalAny(nil); !errors.Is(err, ErrCodec) {
		t.Errorf("marshalAny(nil) error = %v, want ErrCodec", err)
	}
	if _, err := marshalAny((*wrapperspb.StringValue)(nil)); !errors.Is(err, ErrCodec) {
		t.Errorf("marshalAny(typed nil) error = %v, want ErrCodec", err)
	}
	unknown, err := proto.Marshal(&anypb.Any{TypeUrl: "type.googleapis.com/nope.Nope", Value: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unmarshalAny(unknown); !errors.Is(err, ErrCodec) || !errors.Is(err, protoregistry.NotFound) {
		t.Errorf("unmarshalAny(unknown type) error = %v, want ErrCodec wrapping protoregistry.NotFound", err)
	}
	if _, err := unmarshalAny([]byte{0xff}); !errors.Is(err, ErrCodec) {
		t.Errorf("unmarshalAny(garbage) error = %v, want ErrCodec", err)
	}
	got, err := unmarshalAny(mustAny(t, "x"))
	if want := wrapperspb.String("x"); err != nil || !proto.Equal(got, want) {
		t.Errorf("unmarshalAny = %v, %v; want %v", got, err, want)
	}
}

// FuzzDecodeRecord checks that decodeRecord never panics and that whatever it
// accepts re-encodes to a value that decodes to the same record.
func FuzzDecodeRecord(f *testing.F) {
	a := mustAny(f, "a")
	f.Add([]byte{})
	f.Add((&record{nextIndex: 1, events: [][]byte{a}}).encode())
	f.Add((&record{hasSnapshot: true, snapshot: a, snapshotIndex: 3, nextIndex: 4, events: [][]byte{a}}).encode())
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decodeRecord(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := decodeRecord(r.encode())
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !recordsEqual(again, r) {
			t.Fatalf("round trip: got %+v, want %+v", again, r)
		}
		if len(in) == 0 && !reflect.DeepEqual(r, record{}) {
			t.Fatalf("empty input decoded to %+v", r)
		}
	})
}
