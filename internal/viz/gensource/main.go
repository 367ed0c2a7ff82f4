// Command gensource writes source_gen.json, the copy of the protocol's and the
// examples' functions that synod-viz's code panel shows. Run it with
// `go generate ./internal/viz/` after changing any function listed in
// viz.SourceWants; TestSourceInSync fails until then.
package main

import (
	"encoding/json"
	"log"
	"os"

	"github.com/protosynod/protosynod/internal/viz/gosource"
	"github.com/protosynod/protosynod/internal/viz/wants"
)

func main() {
	snips, err := gosource.Extract("../..", wants.List)
	if err != nil {
		log.Fatal(err)
	}
	b, err := json.MarshalIndent(snips, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("source_gen.json", append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}
