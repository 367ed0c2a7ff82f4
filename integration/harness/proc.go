package harness

import (
	"testing"

	"github.com/protosynod/protosynod/internal/procs"
)

// ErrNotRunning is returned when a signal is sent to a process that has exited
// (or was never started).
var ErrNotRunning = procs.ErrNotRunning

// ProcSpec describes a process for [StartProc].
type ProcSpec = procs.ProcSpec

// Proc is a child process started by [StartProc] (see [procs.Proc]): output
// in a log file and an in-memory tail, signals to its whole process group.
type Proc = procs.Proc

// StartProc starts the process described by spec. The process is killed
// (SIGKILL to its process group) in t.Cleanup; if the test failed, the cleanup
// also logs the last lines of its output. On Linux the process also gets
// SIGKILL when the test binary dies (Pdeathsig), so it never outlives the
// tests.
func StartProc(t testing.TB, spec ProcSpec) (*Proc, error) {
	t.Helper()
	return procs.StartProc(t, spec)
}
