// Package procs starts and controls real processes for the integration tests
// (through package integration/harness) and for the benchmark
// (cmd/synod-bench): building Go binaries from the module's pinned
// dependencies, picking loopback ports, running a child process with its
// output in a log file and an in-memory tail, and running a routed cluster
// of nats-server processes.
//
// Callers pass an [Env]: a *testing.T in tests, a [CommandEnv] in commands.
// Every process started with an Env is killed when the Env ends.
package procs
