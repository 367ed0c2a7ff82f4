package persistence

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Record is the register value of one persistent actor, decoded for tools
// that show it (such as `synod read -decode`). Use DecodeRecord.
type Record struct {
	// Snapshot is the latest snapshot, nil if none was persisted.
	Snapshot *anypb.Any
	// SnapshotIndex is the snapshot's event index; NextIndex the index the
	// next event will take.
	SnapshotIndex, NextIndex int
	// Events are the events since the snapshot: indices SnapshotIndex to
	// NextIndex-1.
	Events []*anypb.Any
}

// DecodeRecord decodes a persistence register value. A nil or empty value
// is an empty register (the zero Record). Errors match ErrCorrupt, or
// ErrCodec for a snapshot or event that is not an encoded anypb.Any. The
// messages inside the Any values are left encoded: their types need not be
// linked into the tool (anypb.Any.UnmarshalNew decodes those that are).
func DecodeRecord(b []byte) (Record, error) {
	r, err := decodeRecord(b)
	if err != nil {
		return Record{}, err
	}
	out := Record{SnapshotIndex: r.snapshotIndex, NextIndex: r.nextIndex}
	if r.hasSnapshot {
		if out.Snapshot, err = decodeAny(r.snapshot); err != nil {
			return Record{}, fmt.Errorf("%w (snapshot)", err)
		}
	}
	for i, ev := range r.events {
		a, err := decodeAny(ev)
		if err != nil {
			return Record{}, fmt.Errorf("%w (event %d)", err, r.snapshotIndex+i)
		}
		out.Events = append(out.Events, a)
	}
	return out, nil
}

func decodeAny(b []byte) (*anypb.Any, error) {
	a := new(anypb.Any)
	if err := proto.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCodec, err)
	}
	return a, nil
}
