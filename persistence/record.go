package persistence

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The register value of one actor is a protobuf message, hand-encoded here
// with protowire (the repository does not run protoc); record.proto is its
// schema, and TestRecordMatchesSchema checks this code against it:
//
//	message Record {
//	  uint32 version = 1;                      // recordVersion
//	  google.protobuf.Any snapshot = 2;        // absent: no snapshot yet
//	  uint64 snapshot_index = 3;               // the snapshot's event index
//	  uint64 next_index = 4;                   // index of the next event
//	  repeated google.protobuf.Any events = 5; // events snapshot_index .. next_index-1
//	}
//
// An empty register (no value) is the zero record.
const (
	recordVersion = 1

	fieldVersion       protowire.Number = 1
	fieldSnapshot      protowire.Number = 2
	fieldSnapshotIndex protowire.Number = 3
	fieldNextIndex     protowire.Number = 4
	fieldEvents        protowire.Number = 5

	// maxIndex bounds event indices so that index arithmetic never overflows.
	maxIndex = 1 << 62
)

// record is the decoded register value of one actor. Its byte slices are the
// encoded anypb.Any messages; after decodeRecord they alias the input.
type record struct {
	hasSnapshot   bool
	snapshot      []byte // encoded anypb.Any; meaningful when hasSnapshot
	snapshotIndex int
	nextIndex     int
	events        [][]byte // encoded anypb.Any for indices snapshotIndex..nextIndex-1
}

// decodeRecord parses a register value. An empty value is the zero record.
// It never allocates more than the input's size suggests, and rejects unknown
// versions, wrong wire types, repeated singular fields and inconsistent
// indices with ErrCorrupt.
func decodeRecord(b []byte) (record, error) {
	var (
		r    record
		seen [fieldEvents]bool // singular fields already read
	)
	if len(b) == 0 {
		return r, nil
	}
	if n := countEvents(b); n > 0 {
		// One spare slot, so that PersistEvent appends without copying. n is
		// bounded by len(b)/2: every field takes at least two bytes.
		r.events = make([][]byte, 0, n+1)
	}
	version := uint64(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return record{}, errorf(ErrCorrupt, "field tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if num >= fieldVersion && num < fieldEvents {
			if seen[num] {
				return record{}, errorf(ErrCorrupt, "field %d repeated", num)
			}
			seen[num] = true
		}
		want := protowire.VarintType
		switch num {
		case fieldSnapshot, fieldEvents:
			want = protowire.BytesType
		case fieldVersion, fieldSnapshotIndex, fieldNextIndex:
		default:
			// Unknown field: skip it, as protobuf does.
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return record{}, errorf(ErrCorrupt, "field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if typ != want {
			return record{}, errorf(ErrCorrupt, "field %d has wire type %d, want %d", num, typ, want)
		}
		if want == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return record{}, errorf(ErrCorrupt, "field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			if num == fieldSnapshot {
				r.hasSnapshot, r.snapshot = true, v
			} else {
				r.events = append(r.events, v)
			}
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return record{}, errorf(ErrCorrupt, "field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldVersion:
			version = v
		case fieldSnapshotIndex, fieldNextIndex:
			if v > maxIndex {
				return record{}, errorf(ErrCorrupt, "field %d: index %d out of range", num, v)
			}
			if num == fieldSnapshotIndex {
				r.snapshotIndex = int(v)
			} else {
				r.nextIndex = int(v)
			}
		}
	}
	switch {
	case version != recordVersion:
		return record{}, errorf(ErrCorrupt, "record version %d, want %d", version, recordVersion)
	case !r.hasSnapshot && r.snapshotIndex != 0:
		return record{}, errorf(ErrCorrupt, "snapshot index %d without a snapshot", r.snapshotIndex)
	case r.snapshotIndex > r.nextIndex:
		return record{}, errorf(ErrCorrupt, "snapshot index %d beyond next index %d", r.snapshotIndex, r.nextIndex)
	case len(r.events) != r.nextIndex-r.snapshotIndex:
		return record{}, errorf(ErrCorrupt, "%d events between snapshot index %d and next index %d",
			len(r.events), r.snapshotIndex, r.nextIndex)
	}
	return r, nil
}

// countEvents returns how many events fields b holds, or -1 if b does not
// parse; decodeRecord reports the error.
func countEvents(b []byte) int {
	n := 0
	for len(b) > 0 {
		num, typ, m := protowire.ConsumeTag(b)
		if m < 0 {
			return -1
		}
		b = b[m:]
		if m = protowire.ConsumeFieldValue(num, typ, b); m < 0 {
			return -1
		}
		b = b[m:]
		if num == fieldEvents {
			n++
		}
	}
	return n
}

// size returns the length of r's encoding.
func (r *record) size() int {
	n := protowire.SizeTag(fieldVersion) + protowire.SizeVarint(recordVersion)
	if r.hasSnapshot {
		n += protowire.SizeTag(fieldSnapshot) + protowire.SizeBytes(len(r.snapshot))
	}
	if r.snapshotIndex != 0 {
		n += protowire.SizeTag(fieldSnapshotIndex) + protowire.SizeVarint(uint64(r.snapshotIndex))
	}
	if r.nextIndex != 0 {
		n += protowire.SizeTag(fieldNextIndex) + protowire.SizeVarint(uint64(r.nextIndex))
	}
	for _, e := range r.events {
		n += protowire.SizeTag(fieldEvents) + protowire.SizeBytes(len(e))
	}
	return n
}

// encode returns r's encoding in a new buffer. Fields come in field-number
// order and zero scalars are left out, as proto.Marshal does.
func (r *record) encode() []byte {
	b := make([]byte, 0, r.size())
	b = protowire.AppendTag(b, fieldVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, recordVersion)
	if r.hasSnapshot {
		b = protowire.AppendTag(b, fieldSnapshot, protowire.BytesType)
		b = protowire.AppendBytes(b, r.snapshot)
	}
	if r.snapshotIndex != 0 {
		b = protowire.AppendTag(b, fieldSnapshotIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.snapshotIndex))
	}
	if r.nextIndex != 0 {
		b = protowire.AppendTag(b, fieldNextIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.nextIndex))
	}
	for _, e := range r.events {
		b = protowire.AppendTag(b, fieldEvents, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

// marshalAny encodes m as an anypb.Any.
func marshalAny(m proto.Message) ([]byte, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, fmt.Errorf("%w: nil %T", ErrCodec, m)
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %T: %w", ErrCodec, m, err)
	}
	b, err := proto.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("%w: %T: %w", ErrCodec, m, err)
	}
	return b, nil
}

// unmarshalAny decodes an encoded anypb.Any into a new message of the type it
// names, which must be registered in protoregistry.GlobalTypes.
func unmarshalAny(b []byte) (proto.Message, error) {
	var a anypb.Any
	if err := proto.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCodec, err)
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCodec, a.GetTypeUrl(), err)
	}
	return m, nil
}
