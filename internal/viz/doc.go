// Package viz is the engine and the web server of cmd/synod-viz, a
// step-through visualizer of CASPaxos on the real synod code.
//
// A Session is one deterministic run: three acceptors (a1, a2, a3) apply the
// pure synod.AcceptorState rules to durable per-key state, and two proposers
// (p0 for General Lee, p1 for General Ross) are real synod.Proposers whose
// Proposals are stepped the way synod.Client steps them. Nothing moves unless
// a Choice says so: submit a command, deliver, drop or duplicate one message,
// crash or restart an acceptor, retry or abandon a proposal. The registers
// are "missile", whose change function is examples/cluster's Missile handler
// (sign, revoke; launched once two generals signed; no revoke after that),
// and "counter". A session is its seed and its choices: auto mode draws from
// the seed and the step number, undo replays all choices but the last, and
// an export is the seed and the choices as JSON.
//
// Scenarios are built-in scripts with documented outcomes; the tests check
// each outcome, and that the completed operations of random auto runs are
// linearizable (porcupine, with the same change functions as the model).
//
// Server serves the page (embedded HTML, CSS and JavaScript; no build step,
// nothing fetched from elsewhere), holds one Session per page and pushes its
// View over Server-Sent Events. Its live mode (NATSLive) watches a running
// cluster read-only: micro discovery and statistics, and the inspect
// endpoint for chosen keys.
//
// The code panel's source is source_gen.json, extracted from this module's
// files by `go generate ./internal/viz/` (see package wants for the list);
// TestSourceInSync fails when a listed function changed and the copy did not.
package viz
