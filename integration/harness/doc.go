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
//		// ... workers call rec.Call(id, harness.Write(k, v)) and complete the
//		// returned *Pending with Return, Fail or Indeterminate; a nemesis
//		// calls c.Server(1).Kill() and c.Server(1).Restart() ...
//		res := rec.Check(t, 30*time.Second, harness.WithLogs(c),
//			harness.WithSummary(suite.Summary, t.Name()))
//		_ = res
//	}
//
// The library keeps no global state: the build cache and the summary live in
// values the test package owns.
package harness
