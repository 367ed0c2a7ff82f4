// Package scenario is the example cluster's logic, kept out of package main
// so that a test can run it in process: the grains' handlers (a missile
// launch state machine and bank accounts), the nodes (acceptors on Pebble,
// protoactor cluster members and clients over NATS), and Run, the narrated
// scenario that checks its invariants.
//
// The grains are actors of package actors: each handler is the change
// function of the grain's CASPaxos register, so a grain's state lives in
// the acceptors, not in the member that hosts it. Step 3 of Run crashes the
// member hosting the most grains in the middle of traffic and checks that
// they answer again from other members, with every acknowledged operation
// in their state and none applied twice (retries reuse the request ID).
//
// Run it with `go run ./examples/cluster`; see the README for running each
// role as its own process.
package scenario
