// Package integration holds protosynod's end-to-end fault-injection suite
// (DESIGN.md §7). Its tests start real nats-server processes in a routed
// cluster and synod-acceptor processes on Pebble data directories, run a
// seeded workload of reads, writes and compare-and-sets through synod.Client
// proposers over natstransport, inject faults (SIGKILL, SIGSTOP, a killed
// NATS server, toxiproxy latency, bandwidth limits, blackholes and resets),
// and check every history with package harness: linearizable, and no
// acknowledged write lost.
//
// The package has no API; everything is in its tests. Run it with
//
//	go test ./integration/ -v
//
// Environment:
//
//	PROTOSYNOD_SEED=n       seed of every scenario (default: from the clock; printed)
//	PROTOSYNOD_SOAK=1       longer load per scenario and more seeds
//	PROTOSYNOD_ARTIFACTS=d  keep histories, visualizations and logs of failures in d
//
// A summary table (one row per checked scenario) is printed at the end of
// the run; go test shows it with -v or when run in this directory.
package integration
