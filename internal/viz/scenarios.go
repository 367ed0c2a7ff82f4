package viz

import (
	"errors"
	"fmt"
	"strings"

	"github.com/protosynod/protosynod/examples/cluster/scenario"
)

// Scenario is a built-in script: loading it starts a fresh session whose
// script holds the scenario's choices, to step through one at a time.
type Scenario struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Outcome string `json:"outcome"` // what the session shows once the script ran

	build func(b *builder)
	check func(s *Session) error
}

// Scenarios are the built-in scenarios, in the order the page lists them.
var Scenarios = []Scenario{
	{
		Name:    "happy",
		Title:   "Happy path: Lee signs (two phases), then revokes on the one-round-trip path",
		Outcome: "operation 1 commits \"signed: Lee\" in one attempt; operation 2 starts from p0's cached ballot 2/p0, skips the prepare and commits \"signed: none\"; every acceptor accepted 2/p0 and promised 3/p0",
		build: func(b *builder) {
			b.submit(0, CmdSign)
			b.quiesce()
			b.submit(0, CmdRevoke)
			b.quiesce()
		},
		check: func(s *Session) error {
			return all(
				opIs(s, 1, "signed: Lee", nil), opIs(s, 2, "signed: none", nil),
				attempts(s, 1, 1), attempts(s, 2, 1), fast(s, 2, true),
				acceptorIs(s, MissileKey, "3/p0", "2/p0", "a1", "a2", "a3"),
			)
		},
	},
	{
		Name:    "dueling",
		Title:   "Dueling proposers: p1's prepare overtakes p0's accept",
		Outcome: "p0's prepare 1/p0 wins a1 and a2 (its prepare to a3 is dropped); p1's prepare 1/p1 then reaches all three; p0's accept 1/p0 is refused everywhere (seen 1/p1), so its retry at 3/p0 runs counterInc again: p1 commits 1, p0 commits 2 in two attempts",
		build: func(b *builder) {
			b.submit(0, CmdInc)
			b.submit(1, CmdInc)
			b.deliver("prepare", 0, "a1")
			b.deliver("prepare", 0, "a2")
			b.drop("prepare", 0, "a3")
			b.deliver("promise", 0, "a1")
			b.deliver("promise", 0, "a2")
			for _, a := range AcceptorIDs {
				b.deliver("prepare", 1, a)
			}
			for _, a := range AcceptorIDs {
				b.deliver("accept", 0, a)
			}
			for _, a := range AcceptorIDs {
				b.deliver("refused", 0, a)
			}
			b.deliver("promise", 1, "a1")
			b.deliver("promise", 1, "a2")
			b.quiesce()
		},
		check: func(s *Session) error {
			return all(
				opIs(s, 2, "1", nil), opIs(s, 1, "2", nil), attempts(s, 1, 2), attempts(s, 2, 1),
				ran(s, 1, 2), acceptorIs(s, CounterKey, "4/p0", "3/p0", "a1", "a2", "a3"),
			)
		},
	},
	{
		Name:    "lost-accept",
		Title:   "A lost accept that a later round repairs",
		Outcome: "p0's accept 1/p0 reaches only a1 (the others are dropped); p0 times out and retries at 3/p0; the new prepare quorum reports its own result 1 at a1, so it commits 1 again without running counterInc twice: the counter is 1",
		build: func(b *builder) {
			b.submit(0, CmdInc)
			for _, a := range AcceptorIDs {
				b.deliver("prepare", 0, a)
			}
			b.deliver("promise", 0, "a1")
			b.deliver("promise", 0, "a2")
			b.deliver("accept", 0, "a1")
			b.drop("accept", 0, "a2")
			b.drop("accept", 0, "a3")
			b.deliver("accepted", 0, "a1")
			b.drop("promise", 0, "a3")
			b.do(Choice{Act: ActRetry, Proposer: 0})
			b.quiesce()
		},
		check: func(s *Session) error {
			return all(opIs(s, 1, "1", nil), attempts(s, 1, 2), ran(s, 1, 1),
				acceptorIs(s, CounterKey, "4/p0", "3/p0", "a1", "a2", "a3"))
		},
	},
	{
		Name:    "fast-path-refused",
		Title:   "The one-round-trip path refused after another proposer's prepare",
		Outcome: "p0 commits 1 and caches 2/p0; p1's prepare 1/p1 is refused, its retry 3/p1 is promised everywhere; p0's next change sends accept 2/p0 straight away, which every acceptor refuses (seen 3/p1); p1 commits 2 (promising 4/p1 for its next change), and p0 falls back to two phases: its prepare 4/p0 is refused too, and at 6/p0 it commits 3, having run counterInc twice (its refused result is nowhere)",
		build: func(b *builder) {
			b.submit(0, CmdInc)
			b.quiesce()
			b.submit(1, CmdInc)
			for _, a := range AcceptorIDs {
				b.deliver("prepare", 1, a)
			}
			for _, a := range AcceptorIDs {
				b.deliver("refused", 1, a)
			}
			b.do(Choice{Act: ActRetry, Proposer: 1})
			for _, a := range AcceptorIDs {
				b.deliver("prepare", 1, a)
			}
			b.submit(0, CmdInc)
			for _, a := range AcceptorIDs {
				b.deliver("accept", 0, a)
			}
			for _, a := range AcceptorIDs {
				b.deliver("refused", 0, a)
			}
			b.quiesce()
		},
		check: func(s *Session) error {
			return all(opIs(s, 1, "1", nil), opIs(s, 2, "2", nil), opIs(s, 3, "3", nil),
				fast(s, 3, true), attempts(s, 3, 3), ran(s, 3, 2))
		},
	},
	{
		Name:    "crash",
		Title:   "An acceptor crash between promise and accept",
		Outcome: "a1 promises 1/p0, then crashes before p0's accept arrives (it is lost); a2 and a3 accept, so Lee's signature commits; a1 restarts still promising 1/p0 (durable) with nothing accepted; Ross then signs through p1 and the missile launches; a1 catches up with 3/p1",
		build: func(b *builder) {
			b.submit(0, CmdSign)
			for _, a := range AcceptorIDs {
				b.deliver("prepare", 0, a)
			}
			b.deliver("promise", 0, "a1")
			b.deliver("promise", 0, "a2")
			b.do(Choice{Act: ActCrash, Acceptor: "a1"})
			for _, a := range AcceptorIDs {
				b.deliver("accept", 0, a)
			}
			b.quiesce()
			b.do(Choice{Act: ActRestart, Acceptor: "a1"})
			b.submit(1, CmdSign)
			b.quiesce()
		},
		check: func(s *Session) error {
			return all(opIs(s, 1, "signed: Lee", nil), opIs(s, 2, "LAUNCHED by Lee+Ross", nil),
				acceptorIs(s, MissileKey, "4/p1", "3/p1", "a1", "a2", "a3"))
		},
	},
	{
		Name:    "write-back",
		Title:   "A change function's error written back",
		Outcome: "Ross revokes a signature he never gave: Missile refuses (not-signed); p1 still commits the unchanged value at 1/p1, so the refusal was computed from a value that really is the latest, then reports the error",
		build: func(b *builder) {
			b.submit(1, CmdRevoke)
			b.quiesce()
		},
		check: func(s *Session) error {
			return all(opIs(s, 1, "signed: none", scenario.ErrNotSigned),
				acceptorIs(s, MissileKey, "2/p1", "1/p1", "a1", "a2", "a3"))
		},
	},
	{
		Name:    "missile",
		Title:   "The missile launch: Lee and Ross sign, Lee's revoke is refused",
		Outcome: "Lee's signature commits, Ross's commits after his first prepare is refused and the missile is LAUNCHED by Lee+Ross; Lee's revoke afterwards is refused (launched) and the launched state is written back",
		build: func(b *builder) {
			b.submit(0, CmdSign)
			b.quiesce()
			b.submit(1, CmdSign)
			b.quiesce()
			b.submit(0, CmdRevoke)
			b.quiesce()
		},
		check: func(s *Session) error {
			return all(opIs(s, 1, "signed: Lee", nil), opIs(s, 2, "LAUNCHED by Lee+Ross", nil),
				opIs(s, 3, "LAUNCHED by Lee+Ross", scenario.ErrLaunched))
		},
	},
}

// ScenarioByName returns the built-in scenario called name.
func ScenarioByName(name string) (Scenario, bool) {
	for _, sc := range Scenarios {
		if sc.Name == name {
			return sc, true
		}
	}
	return Scenario{}, false
}

// Choices returns the scenario's script.
func (sc Scenario) Choices() ([]Choice, error) {
	b := &builder{s: New(1)}
	sc.build(b)
	if b.err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, b.err)
	}
	return b.s.Choices(), nil
}

// Load returns a fresh session of seed whose script is the scenario's.
func (sc Scenario) Load(seed uint64) (*Session, error) {
	cs, err := sc.Choices()
	if err != nil {
		return nil, err
	}
	s := New(seed)
	s.script = cs
	return s, nil
}

// Check reports whether s shows the scenario's documented outcome.
func (sc Scenario) Check(s *Session) error { return sc.check(s) }

// builder records a scenario's choices on a scratch session, finding
// messages by what they are rather than by number.
type builder struct {
	s   *Session
	err error
}

func (b *builder) do(c Choice) {
	if b.err == nil {
		b.err = b.s.Do(c)
	}
}

func (b *builder) submit(p int, cmd string) { b.do(Choice{Act: ActSubmit, Proposer: p, Cmd: cmd}) }

func (b *builder) quiesce() {
	if b.err == nil {
		_, b.err = b.s.Quiesce(500)
	}
}

// msg finds the oldest message in flight of kind between proposer p and acceptor a.
func (b *builder) msg(kind string, p int, a string) int {
	for _, m := range b.s.View().Messages {
		if m.Kind == kind && (m.From == a || m.To == a) && (m.From == ProposerIDs[p] || m.To == ProposerIDs[p]) {
			return m.ID
		}
	}
	if b.err == nil {
		b.err = fmt.Errorf("no %s between %s and %s in flight", kind, ProposerIDs[p], a)
	}
	return -1
}

func (b *builder) deliver(kind string, p int, a string) {
	b.do(Choice{Act: ActDeliver, Msg: b.msg(kind, p, a)})
}

func (b *builder) drop(kind string, p int, a string) {
	b.do(Choice{Act: ActDrop, Msg: b.msg(kind, p, a)})
}

// Outcome checks.

func all(errs ...error) error { return errors.Join(errs...) }

func op(s *Session, id int) (*Op, error) {
	if id < 1 || id > len(s.ops) {
		return nil, fmt.Errorf("no operation %d", id)
	}
	o := s.ops[id-1]
	if !o.Done() {
		return nil, fmt.Errorf("operation %d not done", id)
	}
	return o, nil
}

func opIs(s *Session, id int, value string, wantErr error) error {
	o, err := op(s, id)
	if err != nil {
		return err
	}
	if got := describeValue(o.Key, o.Value); got != value {
		return fmt.Errorf("operation %d: value %q, want %q", id, got, value)
	}
	if !errors.Is(o.Err, wantErr) || (wantErr == nil && o.Err != nil) {
		return fmt.Errorf("operation %d: error %v, want %v", id, o.Err, wantErr)
	}
	return nil
}

func attempts(s *Session, id, n int) error {
	o, err := op(s, id)
	if err != nil {
		return err
	}
	if o.Attempts != n {
		return fmt.Errorf("operation %d: %d attempts, want %d", id, o.Attempts, n)
	}
	return nil
}

func ran(s *Session, id, n int) error {
	o, err := op(s, id)
	if err != nil {
		return err
	}
	if o.Ran != n {
		return fmt.Errorf("operation %d: change function ran %d times, want %d", id, o.Ran, n)
	}
	return nil
}

func fast(s *Session, id int, want bool) error {
	o, err := op(s, id)
	if err != nil {
		return err
	}
	if o.FastPath != want {
		return fmt.Errorf("operation %d: fast path %v, want %v", id, o.FastPath, want)
	}
	return nil
}

func acceptorIs(s *Session, key, promised, accepted string, ids ...string) error {
	var errs []string
	for _, id := range ids {
		st := s.AcceptorState(id, key)
		if st.Promised.String() != promised || st.Accepted.String() != accepted {
			errs = append(errs, fmt.Sprintf("%s %s: promised %v accepted %v, want %s and %s", id, key, st.Promised, st.Accepted, promised, accepted))
		}
	}
	if errs != nil {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
