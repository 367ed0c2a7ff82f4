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
// for one without sleeping.
type recorder struct {
	mu      sync.Mutex
	latest  []string // member IDs, sorted
	count   int      // topologies recorded
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}, 1)}
}

func (r *recorder) record(ms cluster.Members) {
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
	r.latest = ids
	r.count++
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.latest), r.count
}

// waitFor waits until the latest topology has exactly the IDs in want and
// returns how long that took. It fails the test after within.
func (r *recorder) waitFor(t testing.TB, within time.Duration, want ...string) time.Duration {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	start := time.Now()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		got, _ := r.snapshot()
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			got, _ := r.snapshot()
			t.Fatalf("topology after %v: got %v, want %v", within, got, want)
		}
	}
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
