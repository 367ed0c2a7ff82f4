package persistence

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The differential tests run the same scenario in real actors over this
// package's Provider and over protoactor's InMemoryProvider, and require the
// same transcript: every reply, and every message each incarnation handled
// (snapshot offered, events replayed, ReplayComplete, snapshot requests), in
// order.

var (
	flagSeed      = flag.Uint64("seed", 0, "seed of the random differential scenarios (0: from the clock)")
	flagScenarios = flag.Int("scenarios", 6, "number of random differential scenarios")
)

// step is one scenario action on actor number actor.
type step struct {
	op    string // "send", "query", "snapshot", "crash" or "restart"
	actor int
	arg   string // the sent string, for "send"
}

// scenario describes one run: stored data first, then steps.
type scenario struct {
	name     string
	interval int
	actors   int
	// seed writes data before the actors start; may be nil.
	seed  func(p protopersistence.Provider)
	steps []step
	// want, if set, is the final state of each actor.
	want [][]string
}

func journalName(i int) string { return fmt.Sprintf("journal-%d", i) }

// run plays sc against provider p in a fresh actor system and returns the
// transcript. Every actor is restarted (stopped and spawned again) and
// queried at the end.
func (sc scenario) run(t *testing.T, p protopersistence.Provider) (transcript []string, final [][]string) {
	t.Helper()
	if sc.seed != nil {
		sc.seed(p)
	}
	sys := newActorSystem(t)
	props := journalProps(p)
	pids := make([]*actor.PID, sc.actors)
	spawn := func(i int) {
		pid, err := sys.Root.SpawnNamed(props, journalName(i))
		if err != nil {
			t.Fatalf("spawn %s: %v", journalName(i), err)
		}
		pids[i] = pid
	}
	stop := func(i int) {
		if _, err := sys.Root.PoisonFuture(pids[i]).Result(); err != nil {
			t.Fatalf("stop %s: %v", journalName(i), err)
		}
	}
	logf := func(format string, args ...any) { transcript = append(transcript, fmt.Sprintf(format, args...)) }
	for i := range sc.actors {
		spawn(i)
	}
	steps := slices.Clone(sc.steps)
	for i := range sc.actors {
		steps = append(steps, step{op: "restart", actor: i}, step{op: "query", actor: i})
	}
	for _, s := range steps {
		pid := pids[s.actor]
		switch s.op {
		case "send":
			logf("send %d %s: %s", s.actor, s.arg, describe(request(t, sys, pid, wrapperspb.String(s.arg))))
		case "query":
			logf("query %d: %s", s.actor, describe(queryView(t, sys, pid)))
		case "snapshot":
			logf("snapshot %d: %s", s.actor, describe(request(t, sys, pid, &takeSnapshot{})))
		case "crash":
			sys.Root.Send(pid, &crash{})
			logf("crash %d", s.actor)
		case "restart":
			stop(s.actor)
			spawn(s.actor)
			logf("restart %d", s.actor)
		default:
			t.Fatalf("unknown step %q", s.op)
		}
	}
	for i := range sc.actors {
		final = append(final, queryView(t, sys, pids[i]).state)
	}
	return transcript, final
}

// compare runs sc over both providers, ours over a local cluster, and
// reports any difference.
func (sc scenario) compare(t *testing.T) {
	t.Helper()
	ours, _, _ := newTestProvider(t, WithSnapshotInterval(sc.interval))
	sc.compareWith(t, ours)
}

// compareWith runs sc over ours and over protoactor's InMemoryProvider, and
// reports any difference. It returns the final states.
func (sc scenario) compareWith(t *testing.T, ours protopersistence.Provider) [][]string {
	t.Helper()
	got, gotFinal := sc.run(t, ours)
	want, wantFinal := sc.run(t, inMemory{protopersistence.NewInMemoryProvider(sc.interval)})
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("transcripts differ at line %d:\n got (register): %s\nwant (InMemory): %s\nfull register transcript:\n  %s",
			i, at(got, i), at(want, i), strings.Join(got, "\n  "))
	}
	if sc.want != nil {
		for i := range sc.want {
			if !slices.Equal(gotFinal[i], sc.want[i]) || !slices.Equal(wantFinal[i], sc.want[i]) {
				t.Fatalf("actor %d final state: register %v, InMemory %v; want %v", i, gotFinal[i], wantFinal[i], sc.want[i])
			}
		}
	}
	if testing.Verbose() {
		t.Logf("transcript (%d lines):\n  %s", len(got), strings.Join(got, "\n  "))
	}
	return gotFinal
}

func firstDiff(a, b []string) int {
	for i := range max(len(a), len(b)) {
		if at(a, i) != at(b, i) {
			return i
		}
	}
	return -1
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<missing>"
}

// sends returns one send step per argument, to actor 0.
func sends(args ...string) []step {
	var s []step
	for _, a := range args {
		s = append(s, step{op: "send", arg: a})
	}
	return s
}

// TestRecoveryMatchesInMemory ports protoactor's persistence TestRecovery: the
// same stored data (initData) and messages, then a stop and a respawn.
func TestRecoveryMatchesInMemory(t *testing.T) {
	tests := []struct {
		name         string
		interval     int
		lastSnapshot int
		stored       []string
		msgs         []string
		want         []string
	}{
		{"replay with no state", 5, 0, nil, nil, []string{}},
		{"replay directly on snapshot", 8, 2, []string{"a", "b", "c"}, nil, []string{"a", "b", "c"}},
		{"snapshot and events, add an event", 8, 1, []string{"a", "b", "c"}, []string{"d"}, []string{"a", "b", "c", "d"}},
		{"add an event that triggers a snapshot", 4, 1, []string{"a", "b", "c"}, []string{"d"}, []string{"a", "b", "c", "d"}},
		{"snapshot then another event", 4, 1, []string{"a", "b", "c"}, []string{"d", "e"}, []string{"a", "b", "c", "d", "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps := append(sends(tt.msgs...), step{op: "query"}, step{op: "restart"}, step{op: "query"})
			scenario{
				interval: tt.interval,
				actors:   1,
				seed:     func(p protopersistence.Provider) { seed(p, journalName(0), tt.lastSnapshot, tt.stored...) },
				steps:    steps,
				want:     [][]string{tt.want},
			}.compare(t)
		})
	}
}

// TestScenariosMatchInMemory covers snapshot intervals, events after a
// snapshot, restarts by stopping and by supervision, snapshots the actor
// takes itself, and several actors on one provider.
func TestScenariosMatchInMemory(t *testing.T) {
	letters := strings.Split("abcdefghijklm", "")
	restartEvery := func(n int, args []string) []step {
		var s []step
		for i, a := range args {
			s = append(s, step{op: "send", arg: a})
			if (i+1)%n == 0 {
				s = append(s, step{op: "restart"}, step{op: "query"})
			}
		}
		return s
	}
	var tests []scenario
	for _, interval := range []int{1, 2, 3, 5, 100} {
		tests = append(tests, scenario{
			name:     fmt.Sprintf("interval %d, restart every 4", interval),
			interval: interval, actors: 1,
			steps: restartEvery(4, letters),
			want:  [][]string{letters},
		})
	}
	tests = append(tests,
		scenario{
			name: "crash after snapshot", interval: 3, actors: 1,
			steps: append(sends("a", "b", "c", "d", "e"), step{op: "crash"}, step{op: "query"},
				step{op: "send", arg: "f"}, step{op: "crash"}, step{op: "crash"}, step{op: "query"}),
			want: [][]string{{"a", "b", "c", "d", "e", "f"}},
		},
		scenario{
			name: "snapshots taken by the actor", interval: 100, actors: 1,
			steps: append(append(sends("a", "b"), step{op: "snapshot"}, step{op: "restart"}, step{op: "query"},
				step{op: "snapshot"}, step{op: "snapshot"}, step{op: "restart"}, step{op: "query"}),
				sends("c", "d")...),
			want: [][]string{{"a", "b", "c", "d"}},
		},
		scenario{
			name: "stored events and snapshot, then more", interval: 2, actors: 2,
			seed: func(p protopersistence.Provider) {
				seed(p, journalName(0), 3, "a", "b", "c", "d", "e")
				seed(p, journalName(1), 9, "x", "y") // no snapshot
			},
			steps: []step{{op: "query"}, {op: "query", actor: 1}, {op: "send", arg: "f"},
				{op: "send", actor: 1, arg: "z"}, {op: "crash", actor: 1}, {op: "send", arg: "g"}, {op: "query", actor: 1}},
			want: [][]string{{"a", "b", "c", "d", "e", "f", "g"}, {"x", "y", "z"}},
		},
		scenario{
			name: "three actors interleaved", interval: 2, actors: 3,
			steps: []step{{op: "send", arg: "a0"}, {op: "send", actor: 1, arg: "b0"}, {op: "send", actor: 2, arg: "c0"},
				{op: "send", arg: "a1"}, {op: "restart", actor: 1}, {op: "send", actor: 1, arg: "b1"},
				{op: "send", arg: "a2"}, {op: "send", actor: 1, arg: "b2"}, {op: "crash", actor: 2},
				{op: "send", actor: 2, arg: "c1"}, {op: "query"}, {op: "query", actor: 1}, {op: "query", actor: 2}},
			want: [][]string{{"a0", "a1", "a2"}, {"b0", "b1", "b2"}, {"c0", "c1"}},
		},
	)
	for _, sc := range tests {
		t.Run(sc.name, sc.compare)
	}
}

// TestRandomScenariosMatchInMemory plays seeded random scenarios; -seed
// replays one run, -scenarios sets how many to play.
func TestRandomScenariosMatchInMemory(t *testing.T) {
	s := *flagSeed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", s, s)
	rng := rand.New(rand.NewPCG(s, 0))
	n := *flagScenarios
	if testing.Short() {
		n = min(n, 2)
	}
	for k := range n {
		sc := randomScenario(rng, k)
		t.Run(sc.name, sc.compare)
	}
}

// randomScenario draws a scenario of 1 to 3 actors and 40 steps; each
// actor's final state must be everything sent to it, in order.
func randomScenario(rng *rand.Rand, k int) scenario {
	sc := scenario{
		interval: []int{1, 2, 3, 4, 7}[rng.IntN(5)],
		actors:   1 + rng.IntN(3),
	}
	sc.name = fmt.Sprintf("scenario %d: interval %d, %d actors", k, sc.interval, sc.actors)
	sc.want = make([][]string, sc.actors)
	for i := range sc.want {
		sc.want[i] = []string{}
	}
	for i := range 40 {
		a := rng.IntN(sc.actors)
		switch r := rng.IntN(100); {
		case r < 60:
			v := fmt.Sprintf("v%d", i)
			sc.steps = append(sc.steps, step{op: "send", actor: a, arg: v})
			sc.want[a] = append(sc.want[a], v)
		case r < 70:
			sc.steps = append(sc.steps, step{op: "query", actor: a})
		case r < 78:
			sc.steps = append(sc.steps, step{op: "snapshot", actor: a})
		case r < 86:
			sc.steps = append(sc.steps, step{op: "crash", actor: a})
		default:
			sc.steps = append(sc.steps, step{op: "restart", actor: a})
		}
	}
	return sc
}
