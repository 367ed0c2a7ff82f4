package natscluster

import (
	"bytes"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
)

// recorder collects the topologies a provider publishes and lets tests wait
// for one without sleeping. It keeps them all, so a wait cannot miss a
// topology that was quickly replaced.
type recorder struct {
	mu      sync.Mutex
	history [][]string      // member IDs of each topology, sorted
	last    cluster.Members // the latest topology given to record
	next    int             // where waitFor starts looking
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}, 1)}
}

func (r *recorder) record(ms cluster.Members) {
	r.mu.Lock()
	r.last = ms
	r.mu.Unlock()
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.Id)
	}
	r.recordIDs(ids)
}

func (r *recorder) recordIDs(ids []string) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	r.mu.Lock()
	r.history = append(r.history, ids)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// lastMembers returns the latest topology given to record.
func (r *recorder) lastMembers() cluster.Members {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// snapshot returns the latest topology.
func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.history) == 0 {
		return nil
	}
	return slices.Clone(r.history[len(r.history)-1])
}

// find looks for want from r.next on and moves r.next to the match.
func (r *recorder) find(want []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := r.next; i < len(r.history); i++ {
		if slices.Equal(r.history[i], want) {
			r.next = i
			return true
		}
	}
	return false
}

// waitFor waits until a topology with exactly the IDs in want has been
// recorded, at or after the one the previous waitFor matched, and returns
// how long that took. It fails the test after within.
func (r *recorder) waitFor(t testing.TB, within time.Duration, want ...string) time.Duration {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	start := time.Now()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for !r.find(want) {
		select {
		case <-r.changed:
		case <-deadline.C:
			if !r.find(want) {
				t.Fatalf("topology after %v: got %v, want %v", within, r.snapshot(), want)
			}
		}
	}
	return time.Since(start)
}

// runLoops counts the goroutines running a provider's loop.
func runLoops() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("natscluster.(*Provider).run("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitNoRunLoops fails the test if provider goroutines remain.
func waitNoRunLoops(t testing.TB) {
	t.Helper()
	// Shutdown waits for the loop to return, but the goroutine's last
	// instructions (close(done) and exit) may still be on the stack.
	deadline := time.Now().Add(5 * time.Second)
	for runLoops() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d provider goroutines still running", runLoops())
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
