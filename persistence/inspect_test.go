package persistence

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestDecodeRecord(t *testing.T) {
	a, c := mustAny(t, "a"), mustAny(t, "snap")
	enc := (&record{hasSnapshot: true, snapshot: c, snapshotIndex: 7, nextIndex: 8, events: [][]byte{a}}).encode()
	r, err := DecodeRecord(enc)
	if err != nil {
		t.Fatal(err)
	}
	if r.SnapshotIndex != 7 || r.NextIndex != 8 || r.Snapshot == nil || len(r.Events) != 1 {
		t.Fatalf("DecodeRecord = %+v", r)
	}
	m, err := r.Events[0].UnmarshalNew()
	if err != nil || !proto.Equal(m, wrapperspb.String("a")) {
		t.Errorf("event 7 = %v, %v; want \"a\"", m, err)
	}
	if r, err := DecodeRecord(nil); err != nil || r.Snapshot != nil || r.Events != nil || r.NextIndex != 0 {
		t.Errorf("DecodeRecord(nil) = %+v, %v; want the zero record", r, err)
	}
	bad := (&record{nextIndex: 1, events: [][]byte{{0xff}}}).encode()
	if _, err := DecodeRecord(bad); !errors.Is(err, ErrCodec) {
		t.Errorf("an event that is not an Any: %v, want ErrCodec", err)
	}
	if _, err := DecodeRecord([]byte{0xff}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage: %v, want ErrCorrupt", err)
	}
}

// FuzzDecodeRecordForTools checks that DecodeRecord never panics and fails
// only with ErrCorrupt or ErrCodec.
func FuzzDecodeRecordForTools(f *testing.F) {
	a := mustAny(f, "a")
	f.Add([]byte{})
	f.Add((&record{nextIndex: 1, events: [][]byte{a}}).encode())
	f.Add((&record{hasSnapshot: true, snapshot: a, snapshotIndex: 3, nextIndex: 4, events: [][]byte{a}}).encode())
	f.Add((&record{nextIndex: 1, events: [][]byte{{0xff}}}).encode())
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := DecodeRecord(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrCodec) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrCodec", err)
			}
			return
		}
		if len(r.Events) != r.NextIndex-r.SnapshotIndex {
			t.Fatalf("%d events between %d and %d", len(r.Events), r.SnapshotIndex, r.NextIndex)
		}
	})
}
