package viz

import (
	"reflect"
	"strings"
	"testing"

	"github.com/protosynod/protosynod/internal/viz/gosource"
	"github.com/protosynod/protosynod/internal/viz/wants"
)

// TestSourceInSync checks that the code panel shows the code that runs: the
// embedded copy equals the functions' current source.
func TestSourceInSync(t *testing.T) {
	got, err := gosource.Extract("../..", wants.List)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Sources()) {
		t.Fatal("internal/viz/source_gen.json is stale: run `go generate ./internal/viz/`")
	}
	for _, s := range got {
		if !strings.Contains(s.Text, "func ") {
			t.Errorf("%s: no func in %q", s.Name, s.Text)
		}
	}
}

// TestEventCodeNamed checks that every function an event names has its source
// in the code panel.
func TestEventCodeNamed(t *testing.T) {
	have := map[string]bool{}
	for _, s := range Sources() {
		have[s.Name] = true
	}
	for _, sc := range Scenarios {
		s, err := sc.Load(1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Quiesce(1000); err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Events() {
			for _, c := range e.Code {
				if !have[c] {
					t.Errorf("%s step %d runs %s, whose source is not embedded", sc.Name, e.Step, c)
				}
			}
		}
	}
}
