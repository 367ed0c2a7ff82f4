package viz

import (
	"encoding/json"
	"testing"
)

// FuzzImport feeds arbitrary JSON to the import path: decoding it and
// replaying its choices never panics, and a replayed session renders.
func FuzzImport(f *testing.F) {
	for _, sc := range Scenarios[:3] {
		cs, err := sc.Choices()
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(Export{Format: ExportFormat, Seed: 1, Choices: cs[:len(cs)/2], Script: cs[len(cs)/2:]})
		f.Add(b)
	}
	f.Add([]byte(`{"format":"synod-viz/1","seed":3,"choices":[{"act":"retry","proposer":-1},{"act":"dup","msg":1},{"act":"submit","proposer":5,"cmd":"sign"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<14 {
			return
		}
		var e Export
		if json.Unmarshal(data, &e) != nil {
			return
		}
		s, err := Replay(e.Seed, e.Choices, e.Script)
		if err != nil {
			return
		}
		_ = s.View()
		if _, err := s.Step(); err == nil {
			_ = s.View()
		}
	})
}
