package persistence

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// testSeed seeds the backoff jitter of every test client; it is logged by
// newTestClient so that a run can be reproduced.
var testSeed = uint64(time.Now().UnixNano())

// newTestClient returns a synod client named node over tr.
func newTestClient(t testing.TB, tr synod.Transport, cfg synod.Config, node string, opts ...synod.Option) *synod.Client {
	t.Helper()
	t.Logf("client %s: jitter seed %d", node, testSeed)
	opts = append([]synod.Option{synod.WithRand(rand.New(rand.NewPCG(testSeed, uint64(len(node)))))}, opts...)
	c, err := synod.NewClient(synod.ProposerID(node, 1), cfg, tr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestProvider returns a provider over a fresh three-acceptor local cluster.
func newTestProvider(t testing.TB, opts ...Option) (*Provider, *synodtest.LocalTransport, synod.Config) {
	t.Helper()
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	p, err := NewProvider(newTestClient(t, tr, cfg, "n0"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p, tr, cfg
}

// catch runs f and returns the *OpError it panicked with, or nil.
func catch(t testing.TB, f func()) (err *OpError) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*OpError)
			if !ok {
				t.Fatalf("panicked with %T %v, want *OpError", r, r)
			}
			err = e
		}
	}()
	f()
	return nil
}

// countingRegisters counts the rounds a Provider runs.
type countingRegisters struct {
	Registers
	reads, changes atomic.Int64
}

func (c *countingRegisters) Read(ctx context.Context, key string) ([]byte, error) {
	c.reads.Add(1)
	return c.Registers.Read(ctx, key)
}

func (c *countingRegisters) Change(ctx context.Context, key string, f synod.ChangeFunc) ([]byte, error) {
	c.changes.Add(1)
	return c.Registers.Change(ctx, key, f)
}

// events returns the events GetEvents delivers, as strings.
func events(s *State, name string, start, end int) []string {
	var got []string
	s.GetEvents(name, start, end, func(e interface{}) {
		got = append(got, e.(*wrapperspb.StringValue).GetValue())
	})
	return got
}

func TestNewProviderValidation(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, tr, cfg, "n0")
	tests := []struct {
		name string
		regs Registers
		opts []Option
	}{
		{"nil registers", nil, nil},
		{"zero interval", c, []Option{WithSnapshotInterval(0)}},
		{"negative timeout", c, []Option{WithTimeout(-time.Second)}},
		{"zero max size", c, []Option{WithMaxValueSize(0)}},
		{"nil logger", c, []Option{WithLogger(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewProvider(tt.regs, tt.opts...); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewProvider error = %v, want ErrInvalidConfig", err)
			}
		})
	}
	p, err := NewProvider(c, WithKeyPrefix("acct/"), WithSnapshotInterval(7))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Key("bob"), "acct/bob"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := p.GetState().GetSnapshotInterval(), 7; got != want {
		t.Errorf("GetSnapshotInterval = %d, want %d", got, want)
	}
}

// TestRecoveryReadsOnce checks that a recovery as the mixin runs it (Restart,
// GetSnapshot, GetEvents) costs one read round, and that the kept record is
// not served again.
func TestRecoveryReadsOnce(t *testing.T) {
	p0, _, _ := newTestProvider(t, WithSnapshotInterval(3))
	regs := &countingRegisters{Registers: p0.regs}
	p, err := NewProvider(regs, WithSnapshotInterval(3))
	if err != nil {
		t.Fatal(err)
	}
	w := p.NewState()
	for i, s := range []string{"a", "b", "c", "d"} {
		w.PersistEvent("x", i, wrapperspb.String(s))
	}
	w.PersistSnapshot("x", 2, wrapperspb.String("snap"))

	s := p.NewState()
	regs.reads.Store(0)
	s.Restart()
	snap, idx, ok := s.GetSnapshot("x")
	if !ok || idx != 2 || snap.(*wrapperspb.StringValue).GetValue() != "snap" {
		t.Fatalf("GetSnapshot = %v, %d, %v; want snap, 2, true", snap, idx, ok)
	}
	if got, want := strings.Join(events(s, "x", idx, 0), ","), "c,d"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	if got := regs.reads.Load(); got != 1 {
		t.Fatalf("recovery took %d reads, want 1", got)
	}

	// The record was taken: a later GetEvents reads again and sees a newer write.
	w.PersistEvent("x", 4, wrapperspb.String("e"))
	if got, want := strings.Join(events(s, "x", 2, 0), ","), "c,d,e"; got != want {
		t.Fatalf("later events = %s, want %s", got, want)
	}
	if got := regs.reads.Load(); got != 2 {
		t.Fatalf("reads = %d, want 2", got)
	}

	// Restart and writes drop a kept record.
	s.GetSnapshot("x")
	s.Restart()
	w.PersistEvent("x", 5, wrapperspb.String("f"))
	if got, want := strings.Join(events(s, "x", 2, 0), ","), "c,d,e,f"; got != want {
		t.Fatalf("events after Restart = %s, want %s", got, want)
	}
	s.GetSnapshot("x")
	s.PersistEvent("x", 6, wrapperspb.String("g"))
	if got, want := strings.Join(events(s, "x", 2, 0), ","), "c,d,e,f,g"; got != want {
		t.Fatalf("events after a write = %s, want %s", got, want)
	}
}

func TestGetEventsRanges(t *testing.T) {
	p, _, _ := newTestProvider(t)
	s := p.NewState()
	for i, e := range []string{"e0", "e1", "e2", "e3", "e4", "e5"} {
		s.PersistEvent("x", i, wrapperspb.String(e))
	}
	s.PersistSnapshot("x", 2, wrapperspb.String("snap"))
	tests := []struct {
		start, end int
		want       string
		compacted  bool
	}{
		{2, 0, "e2,e3,e4,e5", false},
		{3, 5, "e3,e4", false},
		{5, 0, "e5", false},
		{2, 100, "e2,e3,e4,e5", false},
		{6, 0, "", false},
		{9, 0, "", false},
		{4, 3, "", false},
		{0, 0, "", true},
		{1, 3, "", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d", tt.start, tt.end), func(t *testing.T) {
			var got []string
			err := catch(t, func() { got = events(s, "x", tt.start, tt.end) })
			if tt.compacted {
				if err == nil || !errors.Is(err, ErrCompacted) || err.Op != "GetEvents" {
					t.Fatalf("panic = %v, want GetEvents ErrCompacted", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(got, ","); g != tt.want {
				t.Fatalf("got %q, want %q", g, tt.want)
			}
		})
	}
}

func TestPersistSnapshotRules(t *testing.T) {
	p, _, _ := newTestProvider(t)
	s := p.NewState()
	for i := range 5 {
		s.PersistEvent("x", i, wrapperspb.String(fmt.Sprint("e", i)))
	}
	check := func(wantSnap string, wantIdx int, wantEvents string) {
		t.Helper()
		snap, idx, ok := s.GetSnapshot("x")
		got := ""
		if ok {
			got = snap.(*wrapperspb.StringValue).GetValue()
		}
		if got != wantSnap || idx != wantIdx {
			t.Fatalf("snapshot = %q@%d, want %q@%d", got, idx, wantSnap, wantIdx)
		}
		if ev := strings.Join(events(s, "x", idx, 0), ","); ev != wantEvents {
			t.Fatalf("events = %s, want %s", ev, wantEvents)
		}
	}
	check("", 0, "e0,e1,e2,e3,e4")
	s.PersistSnapshot("x", 3, wrapperspb.String("s3"))
	check("s3", 3, "e3,e4")
	s.PersistSnapshot("x", 1, wrapperspb.String("s1")) // older: ignored
	check("s3", 3, "e3,e4")
	s.PersistSnapshot("x", 5, wrapperspb.String("s5")) // at the next index: no events left
	check("s5", 5, "")
	err := catch(t, func() { s.PersistSnapshot("x", 7, wrapperspb.String("s7")) })
	if err == nil || !errors.Is(err, ErrFenced) || err.Op != "PersistSnapshot" || err.Index != 7 {
		t.Fatalf("snapshot beyond the next index: panic %v, want PersistSnapshot ErrFenced", err)
	}
	check("s5", 5, "")
	s.PersistSnapshot("x", -1, wrapperspb.String("negative")) // ignored, like an older one
	check("s5", 5, "")
	if err := catch(t, func() { events(s, "x", -3, 0) }); err == nil || !errors.Is(err, ErrCompacted) {
		t.Fatalf("GetEvents from a negative index: panic %v, want ErrCompacted", err)
	}
	if err := catch(t, func() { s.PersistEvent("x", -1, wrapperspb.String("e")) }); err == nil || !errors.Is(err, ErrFenced) {
		t.Fatalf("PersistEvent at a negative index: panic %v, want ErrFenced", err)
	}
	// Deletes are no-ops: recovery still sees the snapshot and later events.
	s.PersistEvent("x", 5, wrapperspb.String("e5"))
	s.DeleteEvents("x", 5)
	s.DeleteSnapshots("x", 5)
	check("s5", 5, "e5")
}

// TestPersistEventFencing runs two activations of one actor over two clients
// (two nodes) sharing the acceptors: the one that recovered first and wrote
// second is fenced, writes nothing, and recovers both activations' events.
func TestPersistEventFencing(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	pa, err := NewProvider(newTestClient(t, tr, cfg, "node-a"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := NewProvider(newTestClient(t, tr, cfg, "node-b"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := pa.NewState(), pb.NewState()
	recoverNext := func(s *State) int {
		s.Restart()
		_, idx, _ := s.GetSnapshot("acct")
		s.GetEvents("acct", idx, 0, func(interface{}) { idx++ })
		return idx
	}
	na, nb := recoverNext(a), recoverNext(b)
	if na != 0 || nb != 0 {
		t.Fatalf("fresh recovery next indices %d, %d; want 0, 0", na, nb)
	}
	a.PersistEvent("acct", na, wrapperspb.String("a0"))
	err2 := catch(t, func() { b.PersistEvent("acct", nb, wrapperspb.String("b0")) })
	if err2 == nil || !errors.Is(err2, ErrFenced) || err2.Op != "PersistEvent" || err2.Actor != "acct" || err2.Index != 0 {
		t.Fatalf("stale PersistEvent panic = %v, want PersistEvent acct index 0 ErrFenced", err2)
	}
	if !strings.Contains(err2.Error(), "next index is 1") {
		t.Errorf("fenced message %q does not give the register's next index", err2.Error())
	}
	// b re-recovers, writes; now a is stale.
	if nb = recoverNext(b); nb != 1 {
		t.Fatalf("b recovered next index %d, want 1", nb)
	}
	b.PersistEvent("acct", nb, wrapperspb.String("b1"))
	if err := catch(t, func() { a.PersistEvent("acct", 1, wrapperspb.String("a1")) }); err == nil || !errors.Is(err, ErrFenced) {
		t.Fatalf("stale PersistEvent panic = %v, want ErrFenced", err)
	}
	if got, want := strings.Join(events(pa.NewState(), "acct", 0, 0), ","), "a0,b1"; got != want {
		t.Fatalf("register events = %s, want %s", got, want)
	}
}

func TestTooLarge(t *testing.T) {
	const limit = 1024
	p, _, _ := newTestProvider(t, WithMaxValueSize(limit), WithSnapshotInterval(10))
	s := p.NewState()
	err := catch(t, func() { s.PersistEvent("big", 0, wrapperspb.String(strings.Repeat("x", 2*limit))) })
	if err == nil || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize event: panic %v, want ErrTooLarge", err)
	}
	msg := err.Error()
	for _, want := range []string{`"big"`, "over the limit of 1024", "lower the snapshot interval (now 10)", "PersistEvent"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if got := events(s, "big", 0, 0); len(got) != 0 {
		t.Fatalf("the oversize event was written: %v", got)
	}

	// Events accumulate until the limit; a snapshot makes room again.
	ev := wrapperspb.String(strings.Repeat("y", 100))
	i := 0
	for ; catch(t, func() { s.PersistEvent("acc", i, ev) }) == nil; i++ {
		if i > limit {
			t.Fatal("no limit reached")
		}
	}
	if i < 5 {
		t.Fatalf("only %d events of ~150 bytes fit in %d bytes", i, limit)
	}
	err = catch(t, func() { s.PersistEvent("acc", i, ev) })
	if err == nil || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("%d events since index 0", i+1)) {
		t.Fatalf("full register: panic %v, want ErrTooLarge naming %d events", err, i+1)
	}
	s.PersistSnapshot("acc", i, wrapperspb.String("compact"))
	s.PersistEvent("acc", i, ev)
}

// TestUnavailablePanics checks that operations without a quorum panic with
// the synod error within the timeout instead of hanging.
func TestUnavailablePanics(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c := newTestClient(t, tr, cfg, "n0", synod.WithPhaseTimeout(50*time.Millisecond))
	p, err := NewProvider(c, WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	s := p.NewState()
	s.PersistEvent("x", 0, wrapperspb.String("e0")) // warms the one-round-trip path
	tr.Isolate("a0")
	tr.Isolate("a1")
	tests := []struct {
		name string
		op   func()
	}{
		// First, so that it takes the one-round-trip path: indeterminate.
		{"PersistEvent", func() { s.PersistEvent("x", 1, wrapperspb.String("e1")) }},
		{"GetSnapshot", func() { s.GetSnapshot("x") }},
		{"GetEvents", func() { s.GetEvents("x", 0, 0, func(interface{}) {}) }},
		{"PersistSnapshot", func() { s.PersistSnapshot("x", 1, wrapperspb.String("s")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := catch(t, tt.op)
			took := time.Since(start)
			if err == nil || err.Op != tt.name ||
				!(errors.Is(err, synod.ErrUnavailable) || errors.Is(err, synod.ErrIndeterminate) || errors.Is(err, synod.ErrConflict)) {
				t.Fatalf("panic = %v, want %s with a synod quorum error", err, tt.name)
			}
			if took > 10*timeout {
				t.Fatalf("took %v with a timeout of %v", took, timeout)
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		})
	}
	tr.Heal()
	if got, want := strings.Join(events(s, "x", 0, 0), ","), "e0"; got != want &&
		got != "e0,e1" { // e1 was indeterminate: it may have been applied
		t.Fatalf("events after healing = %s, want %s", got, want)
	}
}

func TestCorruptAndUndecodableValues(t *testing.T) {
	p, _, _ := newTestProvider(t)
	regs := p.regs
	put := func(name string, v []byte) {
		t.Helper()
		if _, err := regs.Change(context.Background(), p.Key(name), func([]byte) ([]byte, error) { return v, nil }); err != nil {
			t.Fatal(err)
		}
	}
	put("corrupt", []byte("not a record"))
	unknown, err := proto.Marshal(&anypb.Any{TypeUrl: "type.googleapis.com/nope.Nope"})
	if err != nil {
		t.Fatal(err)
	}
	put("unknown", (&record{hasSnapshot: true, snapshot: unknown, nextIndex: 1, events: [][]byte{unknown}}).encode())
	s := p.NewState()
	tests := []struct {
		name string
		op   func()
		want error
	}{
		{"read corrupt", func() { s.GetSnapshot("corrupt") }, ErrCorrupt},
		{"write corrupt", func() { s.PersistEvent("corrupt", 0, wrapperspb.String("x")) }, ErrCorrupt},
		{"unknown snapshot type", func() { s.GetSnapshot("unknown") }, ErrCodec},
		{"unknown event type", func() { s.GetEvents("unknown", 0, 0, func(interface{}) {}) }, ErrCodec},
		{"nil event", func() { s.PersistEvent("x", 0, nil) }, ErrCodec},
		{"nil snapshot", func() { s.PersistSnapshot("x", 0, nil) }, ErrCodec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := catch(t, tt.op); err == nil || !errors.Is(err, tt.want) {
				t.Fatalf("panic = %v, want %v", err, tt.want)
			}
		})
	}
	v, err := regs.Read(context.Background(), p.Key("corrupt"))
	if err != nil || string(v) != "not a record" {
		t.Fatalf("corrupt register now %q, %v; want it left alone", v, err)
	}
}

// TestKeyFunc maps two activation names of one grain to one register, so
// the second activation recovers and fences against the first.
func TestKeyFunc(t *testing.T) {
	grainKey := func(name string) string {
		id := strings.TrimPrefix(name, "partition-activator/")
		if i := strings.LastIndexByte(id, '$'); i >= 0 {
			id = id[:i]
		}
		return "persistence/account/" + id
	}
	p, _, _ := newTestProvider(t, WithKeyFunc(grainKey))
	const first, second = "partition-activator/bob$1", "partition-activator/bob$2f"
	if got, want := p.Key(second), "persistence/account/bob"; got != want {
		t.Fatalf("Key(%q) = %q, want %q", second, got, want)
	}
	a, b := p.NewState(), p.NewState()
	a.PersistEvent(first, 0, wrapperspb.String("deposit"))
	if got := events(b, second, 0, 0); !slices.Equal(got, []string{"deposit"}) {
		t.Fatalf("second activation recovered %v, want [deposit]", got)
	}
	if err := catch(t, func() { b.PersistEvent(second, 0, wrapperspb.String("again")) }); err == nil || !errors.Is(err, ErrFenced) {
		t.Fatalf("PersistEvent at a taken index through the other name: panic %v, want ErrFenced", err)
	}
	v, err := p.regs.Read(context.Background(), "persistence/account/bob")
	if err != nil || len(v) == 0 {
		t.Fatalf("register persistence/account/bob = %x, %v; want the record", v, err)
	}
}
