// Package synodtest holds test support for synod and the layers above it: an
// in-process transport and cluster (LocalTransport, NewLocalCluster), a seeded
// deterministic simulation of proposers and acceptors over a faulty network,
// and conformance suites for Storage implementations.
package synodtest
