// Package harness runs protosynod's integration tests against real processes,
// Jepsen-style: real nats-server binaries in a routed cluster, processes
// killed with SIGKILL or paused with SIGSTOP, network faults injected by
// in-process toxiproxy proxies, and histories checked for linearizability with
// porcupine.
//
// # Pieces
//
//   - Build: [BuildNATSServer] and [BuildGoBinary] compile binaries from the
//     module's pinned dependencies (nats-server is a go.mod tool), so nothing is
//     downloaded at run time. [Binaries] caches builds for one test binary run.
//   - Ports: [FreePort] and [FreePorts] pick loopback ports. Picking a port and
//     binding it later is racy; starters retry on a bind failure.
//   - Processes: [StartProc] wraps exec.Cmd. Output goes to a log file plus an
//     in-memory tail. A [Proc] can be killed, paused, resumed, terminated and
//     restarted with the same arguments. Every process is killed in t.Cleanup
//     and, on Linux, dies with the test binary (Pdeathsig).
//   - NATS: [StartNATSCluster] runs n nats-server processes as one cluster and
//     waits until routes carry messages between every server and server 0.
//     [WithServerConfig] passes accounts, authorization and tls blocks through;
//     [WriteTLSFiles] makes a throwaway CA and certificates for TLS scenarios.
//   - Network faults: [NewProxy] puts a toxiproxy proxy in front of an address
//     (latency, bandwidth, blackhole, reset, disable, heal).
//   - History: a [Recorder] collects register operations (read, write, CAS)
//     from many goroutines; [Recorder.Check] runs porcupine plus a lost-write
//     check and keeps artifacts (HTML visualization, history, process logs)
//     when the check fails.
//   - Reporting: a [Summary] prints one aligned row per scenario.
//   - [Suite] bundles the build cache and the summary for a TestMain.
//
// # Usage
//
//	var suite = harness.NewSuite()
//
//	func TestMain(m *testing.M) { os.Exit(suite.Run(m)) }
//
//	func TestKillServer(t *testing.T) {
//		if testing.Short() {
//			t.Skip("starts processes")
//		}
//		bin := suite.NATSServer(t)
//		c := harness.StartNATSCluster(t, 3, harness.WithNATSServerBinary(bin))
//		nc := c.Connect(t)
//		rec := harness.NewRecorder()
//		// ... workers use nc and call rec.Call(id, harness.Write(k, v)),
//		// completing the returned *Pending with Return, Fail or
//		// Indeterminate; a nemesis marks its faults with rec.Annotate and
//		// calls c.Server(1).Kill(), c.Server(1).Restart(), c.WaitReady(ctx);
//		// then every key is read once more ...
//		rec.Check(t, 30*time.Second, harness.WithLogs(c),
//			harness.WithSummary(suite.Summary, t.Name()))
//	}
//
// # Recording operations
//
// Call [Recorder.Call] right before a request and complete the [Pending] right
// after the answer: Return with the result, Fail only when the operation
// certainly had no effect (synod.ErrConflict, synod.ErrUnavailable), and
// Indeterminate when it may have taken effect (synod.ErrIndeterminate, a
// timeout, a crash). Write unique values per key, and after the faults heal
// read every key once more: that final read is what the lost-write check
// compares with the acknowledged writes (see [Recorder.Analyze]).
//
// Linearizability checking is NP-hard, and every indeterminate operation
// stays open until the end of the history. Spread the load over many keys
// (porcupine checks each key on its own) and keep the number of indeterminate
// operations per key modest. Indeterminate writes and CASes that no other
// operation could have observed are pruned before the check, which keeps
// crash-heavy workloads of reads and unique-valued writes cheap; refused
// CASes block that pruning.
//
// The library keeps no global state: the build cache and the summary live in
// values the test package owns.
package harness
