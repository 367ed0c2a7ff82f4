package harness

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// step is one operation of a hand-written history: client calls in at call
// and it ends at ret (status ok unless set).
type step struct {
	client    int
	in        Input
	out       Output
	call, ret int // in milliseconds; ret < 0 means never returned
	status    Status
}

// historyOf builds a Recorder holding exactly the given operations.
func historyOf(steps ...step) *Recorder {
	r := NewRecorder()
	for _, s := range steps {
		op := &Op{
			Client:  s.client,
			Process: s.client,
			Input:   s.in,
			Output:  s.out,
			Status:  s.status,
			Call:    time.Duration(s.call) * time.Millisecond,
			Return:  infinity,
		}
		if op.Status == StatusPending {
			op.Status = StatusOK
		}
		if s.ret >= 0 && op.Status != StatusIndeterminate {
			op.Return = time.Duration(s.ret) * time.Millisecond
		}
		r.ops = append(r.ops, op)
	}
	return r
}

func TestAnalyzeHandWrittenHistories(t *testing.T) {
	ok, failed, unknown := StatusOK, StatusFailed, StatusIndeterminate
	tests := []struct {
		name     string
		steps    []step
		wantLin  porcupine.CheckResult
		wantLost int
		wantKeys []string // illegal keys
	}{
		{
			name: "sequential write read cas",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, Read("x"), Output{Value: "a"}, 20, 30, ok},
				{0, CAS("x", "a", "b"), Output{OK: true}, 40, 50, ok},
				{1, CAS("x", "a", "c"), Output{OK: false}, 60, 70, ok},
				{0, Read("x"), Output{Value: "b"}, 80, 90, ok},
			},
			wantLin: porcupine.Ok,
		},
		{
			name: "concurrent writes either order",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 50, ok},
				{1, Write("x", "b"), Output{}, 10, 40, ok},
				{2, Read("x"), Output{Value: "a"}, 60, 70, ok},
			},
			wantLin: porcupine.Ok,
		},
		{
			name: "read of a never-written key is empty",
			steps: []step{
				{0, Read("y"), Output{Value: ""}, 0, 10, ok},
				{0, Write("y", "a"), Output{}, 20, 30, ok},
			},
			wantLin: porcupine.Ok,
		},
		{
			name: "indeterminate write seen later",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, -1, unknown},
				{1, Read("x"), Output{Value: "a"}, 100, 110, ok},
			},
			wantLin: porcupine.Ok,
		},
		{
			name: "indeterminate write never seen",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, Write("x", "b"), Output{}, 20, -1, unknown},
				{2, Read("x"), Output{Value: "a"}, 100, 110, ok},
			},
			wantLin: porcupine.Ok,
		},
		{
			name: "indeterminate cas applied late",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, CAS("x", "a", "b"), Output{}, 20, -1, unknown},
				{2, Read("x"), Output{Value: "a"}, 30, 40, ok},
				{2, Read("x"), Output{Value: "b"}, 50, 60, ok},
			},
			wantLin: porcupine.Ok,
		},
		{
			name: "failed write ignored",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, Write("x", "b"), Output{}, 20, 30, failed},
				{2, Read("x"), Output{Value: "a"}, 40, 50, ok},
			},
			wantLin: porcupine.Ok,
		},
		{
			name: "read of a value never written",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, Read("x"), Output{Value: "zzz"}, 20, 30, ok},
				{2, Write("y", "q"), Output{}, 0, 10, ok},
				{2, Read("y"), Output{Value: "q"}, 20, 30, ok},
			},
			wantLin:  porcupine.Illegal,
			wantKeys: []string{"x"},
			wantLost: 1,
		},
		{
			name: "stale read after acknowledged write",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{0, Write("x", "b"), Output{}, 20, 30, ok},
				{1, Read("x"), Output{Value: "a"}, 40, 50, ok},
			},
			wantLin:  porcupine.Illegal,
			wantKeys: []string{"x"},
			wantLost: 1,
		},
		{
			name: "stale read then fresh read",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{0, Write("x", "b"), Output{}, 20, 30, ok},
				{1, Read("x"), Output{Value: "a"}, 40, 50, ok},
				{1, Read("x"), Output{Value: "b"}, 60, 70, ok},
			},
			wantLin:  porcupine.Illegal,
			wantKeys: []string{"x"},
		},
		{
			name: "failed write that took effect",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, Write("x", "b"), Output{}, 20, 30, failed},
				{2, Read("x"), Output{Value: "b"}, 40, 50, ok},
			},
			wantLin:  porcupine.Illegal,
			wantKeys: []string{"x"},
			wantLost: 1,
		},
		{
			name: "cas refused although the value matched",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, CAS("x", "a", "b"), Output{OK: false}, 20, 30, ok},
			},
			wantLin:  porcupine.Illegal,
			wantKeys: []string{"x"},
		},
		{
			name: "final read of the initial value",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, CAS("x", "a", "b"), Output{OK: true}, 20, 30, ok},
				{2, Read("x"), Output{Value: ""}, 40, 50, ok},
			},
			wantLin:  porcupine.Illegal,
			wantKeys: []string{"x"},
			wantLost: 2,
		},
		{
			name: "final value from a concurrent indeterminate write",
			steps: []step{
				{0, Write("x", "a"), Output{}, 0, 10, ok},
				{1, Write("x", "b"), Output{}, 5, -1, unknown},
				{0, Write("x", "c"), Output{}, 20, 30, ok},
				{2, Read("x"), Output{Value: "b"}, 40, 50, ok},
			},
			wantLin: porcupine.Ok,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := historyOf(tt.steps...).Analyze(10 * time.Second)
			if res.Linearizable != tt.wantLin {
				t.Errorf("Linearizable = %v, want %v", res.Linearizable, tt.wantLin)
			}
			if got, want := strings.Join(res.IllegalKeys, ","), strings.Join(tt.wantKeys, ","); got != want {
				t.Errorf("IllegalKeys = %q, want %q", got, want)
			}
			if len(res.Lost) != tt.wantLost {
				t.Errorf("lost writes = %v, want %d", res.Lost, tt.wantLost)
			}
			err := res.Err()
			if wantErr := tt.wantLin != porcupine.Ok || tt.wantLost > 0; (err != nil) != wantErr {
				t.Errorf("Err() = %v, want error: %v", err, wantErr)
			}
			if tt.wantLin == porcupine.Illegal && !errors.Is(err, ErrNotLinearizable) {
				t.Errorf("Err() = %v, want ErrNotLinearizable", err)
			}
			if tt.wantLost > 0 && !errors.Is(err, ErrLostWrites) {
				t.Errorf("Err() = %v, want ErrLostWrites", err)
			}
		})
	}
}

func TestLostWritesCountsOnlyWritesBeforeTheFinalRead(t *testing.T) {
	ok := StatusOK
	r := historyOf(
		step{0, Write("x", "a"), Output{}, 0, 10, ok},
		step{0, Write("x", "b"), Output{}, 20, 30, ok},
		step{0, Write("x", "c"), Output{}, 40, 50, ok},
		// The final read returns a: b and c were acknowledged before it
		// and a's writer ended before b began, so both are lost.
		step{1, Read("x"), Output{Value: "a"}, 60, 70, ok},
		// Acknowledged after the final read began: not checked.
		step{2, Write("x", "d"), Output{}, 55, 80, ok},
		// A key with an acknowledged write and no read.
		step{3, Write("z", "q"), Output{}, 0, 10, ok},
	)
	res := r.Analyze(10 * time.Second)
	var lost []string
	for _, l := range res.Lost {
		lost = append(lost, l.Op.Input.Value)
	}
	if got := strings.Join(lost, ","); got != "b,c" {
		t.Errorf("lost = %q, want \"b,c\" (%v)", got, res.Lost)
	}
	if got := strings.Join(res.Unverified, ","); got != "z" {
		t.Errorf("Unverified = %q, want \"z\"", got)
	}
}

func TestAnalyzeCountsAndUnavailability(t *testing.T) {
	r := historyOf(
		step{0, Write("x", "a"), Output{}, 0, 100, StatusOK},
		step{1, Write("x", "b"), Output{}, 50, 60, StatusFailed},
		step{1, Write("x", "c"), Output{}, 70, -1, StatusIndeterminate},
		step{2, Read("x"), Output{Value: "a"}, 150, 900, StatusOK},
		step{2, Read("x"), Output{Value: "c"}, 950, 1000, StatusOK},
	)
	res := r.Analyze(10 * time.Second)
	if res.OK != 3 || res.Failed != 1 || res.Indeterminate != 1 {
		t.Errorf("counts ok/failed/indeterminate = %d/%d/%d, want 3/1/1", res.OK, res.Failed, res.Indeterminate)
	}
	if want := 800 * time.Millisecond; res.LongestUnavailable != want {
		t.Errorf("LongestUnavailable = %v, want %v", res.LongestUnavailable, want)
	}
	if res.UnavailableFrom != 100*time.Millisecond || res.HistoryLength != time.Second {
		t.Errorf("unavailable from %v of %v, want from 100ms of 1s", res.UnavailableFrom, res.HistoryLength)
	}
	row := res.Row("scenario")
	if row.OK != 3 || row.Linearizable != "Ok" || row.LostWrites != 0 {
		t.Errorf("Row = %+v", row)
	}
	if got, from, length := longestUnavailable(nil); got != 0 || from != 0 || length != 0 {
		t.Errorf("longestUnavailable(nil) = %v, %v, %v", got, from, length)
	}
	// A stretch at the end (the last operation's tail) is reported as such.
	r = historyOf(
		step{0, Write("x", "a"), Output{}, 0, 100, StatusOK},
		step{1, Write("x", "b"), Output{}, 150, 200, StatusOK},
		step{1, Write("x", "c"), Output{}, 250, 1250, StatusFailed},
	)
	res = r.Analyze(10 * time.Second)
	if res.LongestUnavailable != 1050*time.Millisecond || res.UnavailableFrom != 200*time.Millisecond || res.HistoryLength != 1250*time.Millisecond {
		t.Errorf("tail: longest %v from %v of %v, want 1.05s from 200ms of 1.25s", res.LongestUnavailable, res.UnavailableFrom, res.HistoryLength)
	}
}

func TestErrOnTimeout(t *testing.T) {
	res := &Result{Linearizable: porcupine.Unknown, timeout: time.Second}
	if err := res.Err(); !errors.Is(err, ErrCheckTimeout) {
		t.Errorf("Err() = %v, want ErrCheckTimeout", err)
	}
}

func TestRecorderProcesses(t *testing.T) {
	r := NewRecorder()
	r.Call(7, Write("x", "a")).Return(Output{})
	r.Call(7, Write("x", "b")).Indeterminate(errors.New("timeout"))
	r.Call(7, Write("x", "c")).Fail(errors.New("no quorum"))
	r.Call(8, Read("x"))
	ops := r.Ops()
	procs := []int{ops[0].Process, ops[1].Process, ops[2].Process, ops[3].Process}
	if procs[0] != 0 || procs[1] != 0 || procs[2] != 1 || procs[3] != 2 {
		t.Errorf("processes = %v, want [0 0 1 2]", procs)
	}
	if ops[1].Return != infinity || ops[3].Status != StatusPending {
		t.Errorf("indeterminate op returns at %v, pending op status %v", ops[1].Return, ops[3].Status)
	}
	if ops[2].Err == nil || ops[2].Err.Error() != "no quorum" {
		t.Errorf("failed op error = %v", ops[2].Err)
	}
	defer func() {
		if recover() == nil {
			t.Error("completing an operation twice did not panic")
		}
	}()
	p := r.Call(1, Read("x"))
	p.Return(Output{})
	p.Return(Output{})
}

// captureTB records Errorf calls instead of failing the test.
type captureTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (c *captureTB) Helper() {}

func (c *captureTB) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errors = append(c.errors, fmt.Sprintf(format, args...))
}

type fileSource []string

func (f fileSource) LogFiles() []string { return f }

func TestCheckKeepsArtifactsOnViolation(t *testing.T) {
	base := t.TempDir()
	t.Setenv(ArtifactsEnv, base)
	logFile := filepath.Join(t.TempDir(), "acceptor-1.log")
	if err := os.WriteFile(logFile, []byte("acceptor log line\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := NewRecorder()
	r.Call(0, Write("x", "a")).Return(Output{})
	end := r.Annotate("nemesis", "kill acceptor 1")
	r.Call(0, Write("x", "b")).Return(Output{})
	end()
	r.Call(1, Read("x")).Return(Output{Value: "a"}) // stale: b was acknowledged

	summary := NewSummary()
	ctb := &captureTB{TB: t}
	res := r.Check(ctb, 10*time.Second, WithLogs(fileSource{logFile}), WithSummary(summary, "stale read"))
	if res.Linearizable != porcupine.Illegal {
		t.Fatalf("Linearizable = %v, want Illegal", res.Linearizable)
	}
	if len(ctb.errors) != 1 {
		t.Fatalf("Check reported %d errors, want 1: %q", len(ctb.errors), ctb.errors)
	}
	msg := ctb.errors[0]
	if !strings.Contains(msg, "not linearizable") || !strings.Contains(msg, base) {
		t.Errorf("error %q does not name the violation and the artifacts directory", msg)
	}
	dirs, err := filepath.Glob(filepath.Join(base, "protosynod-*"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("artifact directories = %v (%v), want 1", dirs, err)
	}
	for _, name := range []string{"linearizability.html", "history.txt", "lost-writes.txt", "logs/acceptor-1.log"} {
		b, err := os.ReadFile(filepath.Join(dirs[0], name))
		if err != nil {
			t.Errorf("artifact %s: %v", name, err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("artifact %s is empty", name)
		}
	}
	history, _ := os.ReadFile(filepath.Join(dirs[0], "history.txt"))
	if !strings.Contains(string(history), "kill acceptor 1") || !strings.Contains(string(history), `write(x, "b")`) {
		t.Errorf("history.txt lacks the annotation or an operation:\n%s", history)
	}
	rows := summary.Rows()
	if len(rows) != 1 || rows[0].Violations != 1 || rows[0].LostWrites != 1 || rows[0].Linearizable != "Illegal" {
		t.Errorf("summary rows = %+v", rows)
	}
}

func TestCheckPassesQuietly(t *testing.T) {
	t.Setenv(ArtifactsEnv, t.TempDir())
	r := NewRecorder()
	r.Call(0, Write("x", "a")).Return(Output{})
	r.Call(1, Read("x")).Return(Output{Value: "a"})
	ctb := &captureTB{TB: t}
	if res := r.Check(ctb, 10*time.Second); res.Err() != nil || len(ctb.errors) != 0 {
		t.Errorf("Check of a valid history: %v, reported %q", res.Err(), ctb.errors)
	}
	if dirs, _ := filepath.Glob(filepath.Join(os.Getenv(ArtifactsEnv), "*")); len(dirs) != 0 {
		t.Errorf("artifacts written for a passing check: %v", dirs)
	}
}

// register is a linearizable in-memory register store for exercising the
// recorder from many goroutines. If loseKey is set, writes to it are
// acknowledged and dropped.
type register struct {
	mu      sync.Mutex
	vals    map[string]string
	loseKey string
}

func (g *register) apply(in Input) Output {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch in.Kind {
	case OpRead:
		return Output{Value: g.vals[in.Key]}
	case OpWrite:
		if in.Key != g.loseKey {
			g.vals[in.Key] = in.Value
		}
		return Output{}
	default:
		if g.vals[in.Key] != in.Old {
			return Output{}
		}
		if in.Key != g.loseKey {
			g.vals[in.Key] = in.Value
		}
		return Output{OK: true}
	}
}

// runWorkload drives reg from several goroutines with random reads, writes
// and CASes, some reported failed (not applied) or indeterminate (applied or
// not), then reads every key once more.
func runWorkload(t *testing.T, seed int64, reg *register) *Recorder {
	const clients, opsPerClient = 6, 150
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	rec := NewRecorder()
	var wg sync.WaitGroup
	for c := range clients {
		rng := rand.New(rand.NewSource(seed + int64(c)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range opsPerClient {
				key := keys[rng.Intn(len(keys))]
				value := fmt.Sprintf("c%d-%d", c, i)
				var in Input
				switch rng.Intn(3) {
				case 0:
					in = Read(key)
				case 1:
					in = Write(key, value)
				default:
					in = CAS(key, reg.apply(Read(key)).Value, value)
				}
				p := rec.Call(c, in)
				switch fate := rng.Intn(20); {
				case fate == 0:
					p.Fail(errors.New("unavailable"))
				case fate == 1:
					reg.apply(in)
					p.Indeterminate(errors.New("timeout after accept"))
				case fate == 2:
					p.Indeterminate(errors.New("timeout before accept"))
				default:
					p.Return(reg.apply(in))
				}
			}
		}()
	}
	wg.Wait()
	for _, key := range keys {
		rec.Call(clients, Read(key)).Return(reg.apply(Read(key)))
	}
	return rec
}

func TestRecorderConcurrentRegister(t *testing.T) {
	seed := testSeed(t)
	res := runWorkload(t, seed, &register{vals: make(map[string]string)}).Check(t, 30*time.Second,
		WithSummary(suite.Summary, "harness self-test: in-memory register"))
	if res.OK == 0 || res.Failed == 0 || res.Indeterminate == 0 {
		t.Errorf("workload produced %d ok, %d failed, %d indeterminate; want some of each",
			res.OK, res.Failed, res.Indeterminate)
	}
}

func TestRecorderDetectsDroppedWrites(t *testing.T) {
	seed := testSeed(t)
	res := runWorkload(t, seed, &register{vals: make(map[string]string), loseKey: "k1"}).Analyze(30 * time.Second)
	if !errors.Is(res.Err(), ErrLostWrites) || len(res.Lost) == 0 {
		t.Errorf("dropping every write to k1 went unnoticed: %v", res)
	}
	for _, l := range res.Lost {
		if l.Op.Input.Key != "k1" {
			t.Errorf("lost write on %s reported; only k1 drops writes", l.Op.Input.Key)
		}
	}
}

func TestWriteArtifactsAfterTimeout(t *testing.T) {
	seed := testSeed(t)
	res := runWorkload(t, seed, &register{vals: make(map[string]string)}).Analyze(time.Microsecond)
	if res.Linearizable != porcupine.Unknown {
		t.Skipf("porcupine finished within 1µs (%v); nothing to test", res.Linearizable)
	}
	if !errors.Is(res.Err(), ErrCheckTimeout) {
		t.Errorf("Err() = %v, want ErrCheckTimeout", res.Err())
	}
	if err := res.WriteArtifacts(t.TempDir()); err != nil {
		t.Errorf("WriteArtifacts after a timed-out check: %v", err)
	}
}
