package viz

import (
	_ "embed"
	"encoding/json"

	"github.com/protosynod/protosynod/internal/viz/gosource"
)

//go:generate go run ./gensource

// sourceJSON is the source of the functions of wants.List, extracted from
// this module by gensource; TestSourceInSync keeps it equal to the code.
//
//go:embed source_gen.json
var sourceJSON []byte

// Sources returns the embedded source of the protocol's rules and steps and
// of the state transition functions, in the order of wants.List.
func Sources() []gosource.Snippet {
	var s []gosource.Snippet
	if err := json.Unmarshal(sourceJSON, &s); err != nil {
		panic("viz: source_gen.json: " + err.Error()) // generated; checked by TestSourceInSync
	}
	return s
}
