package pebblestore

import (
	"reflect"
	"testing"

	"github.com/protosynod/protosynod/synod"
)

// FuzzDecodeConfigRecord: arbitrary bytes never panic, and a record that
// decodes is a valid configuration whose record encodes to the same bytes.
func FuzzDecodeConfigRecord(f *testing.F) {
	rec, _ := appendConfig(nil, synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 2, Floor: 9})
	f.Add(rec)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := decodeConfig(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("decoded an invalid configuration: %v", err)
		}
		again, err := appendConfig(nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeConfig(again)
		if err != nil || !reflect.DeepEqual(back, cfg) {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	})
}
