// Package wants lists the functions whose source synod-viz shows: the
// protocol rules and steps it runs, and the state transition functions.
package wants

import "github.com/protosynod/protosynod/internal/viz/gosource"

// List is what gensource extracts into internal/viz/source_gen.json.
var List = []gosource.Want{
	{File: "synod/acceptor.go", Group: "engine", Funcs: []string{
		"AcceptorState.Prepare", "AcceptorState.Accept", "AcceptorState.refuses",
	}},
	{File: "synod/proposer.go", Group: "engine", Funcs: []string{
		"Proposer.Begin", "Proposal.start", "Proposal.OnPrepareReply", "Proposal.vote",
		"Proposal.Apply", "Proposal.run", "Proposal.OnAcceptReply", "Proposal.Retry",
		"Proposal.Abandon", "Proposer.Complete",
	}},
	{File: "synod/quorum.go", Group: "engine", Funcs: []string{"tally"}},
	{File: "internal/viz/funcs.go", Group: "state", Funcs: []string{"missileChange", "counterInc"}},
	{File: "examples/cluster/scenario/handlers.go", Group: "state", Funcs: []string{"Missile"}},
}
