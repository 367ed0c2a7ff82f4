package synod

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"testing/quick"
)

// bruteMeets is the oracle of PrepareMeetsAccept: it tries every prepare
// quorum of a against every accept quorum of b.
func bruteMeets(a, b Config) bool {
	quorums := func(ids []string, q int) [][]string {
		var out [][]string
		for mask := 0; mask < 1<<len(ids); mask++ {
			var set []string
			for i, id := range ids {
				if mask&(1<<i) != 0 {
					set = append(set, id)
				}
			}
			if len(set) == q { // supersets only meet more
				out = append(out, set)
			}
		}
		return out
	}
	for _, p := range quorums(a.Acceptors, a.Q1()) {
		for _, q := range quorums(b.Acceptors, b.Q2()) {
			if !slices.ContainsFunc(p, func(id string) bool { return slices.Contains(q, id) }) {
				return false
			}
		}
	}
	return true
}

// randomConfig draws a small valid-or-not configuration over the IDs x0..x6.
func randomConfig(r *rand.Rand) Config {
	var c Config
	for i := range 7 {
		if r.IntN(2) == 0 {
			c.Acceptors = append(c.Acceptors, fmt.Sprintf("x%d", i))
		}
	}
	if len(c.Acceptors) == 0 {
		c.Acceptors = []string{"x0"}
	}
	n := len(c.Acceptors)
	c.PrepareQuorum, c.AcceptQuorum = 1+r.IntN(n), 1+r.IntN(n)
	return c
}

// TestPrepareMeetsAcceptOracle checks the counting formula against the
// exhaustive search on random pairs of configurations.
func TestPrepareMeetsAcceptOracle(t *testing.T) {
	fast := func(seed uint64) bool {
		rr := rand.New(rand.NewPCG(seed, 7))
		return PrepareMeetsAccept(randomConfig(rr), randomConfig(rr))
	}
	slow := func(seed uint64) bool {
		rr := rand.New(rand.NewPCG(seed, 7))
		return bruteMeets(randomConfig(rr), randomConfig(rr))
	}
	if err := quick.CheckEqual(fast, slow, &quick.Config{MaxCount: 3000}); err != nil {
		t.Fatal(err)
	}
}

func cfg(epoch uint64, q1, q2 int, ids ...string) Config {
	return Config{Acceptors: ids, PrepareQuorum: q1, AcceptQuorum: q2, Epoch: epoch}
}

// TestValidateStep pins down which single steps are safe. Paper: §2.3.
func TestValidateStep(t *testing.T) {
	tests := []struct {
		name       string
		prev, next Config
		ok         bool
	}{
		{"3 to 4 majorities (2F+1 to 2F+2)", cfg(0, 0, 0, "a1", "a2", "a3"), cfg(1, 0, 0, "a1", "a2", "a3", "a4"), true},
		{"4 to 5 majorities (2F+2 to 2F+3)", cfg(1, 0, 0, "a1", "a2", "a3", "a4"), cfg(2, 0, 0, "a1", "a2", "a3", "a4", "a5"), true},
		{"5 to 4 majorities", cfg(2, 0, 0, "a1", "a2", "a3", "a4", "a5"), cfg(3, 0, 0, "a1", "a2", "a3", "a4"), true},
		{"4 to 3 majorities", cfg(3, 0, 0, "a1", "a2", "a3", "a4"), cfg(4, 0, 0, "a1", "a2", "a3"), true},
		{"replace in one step", cfg(0, 0, 0, "a1", "a2", "a3"), cfg(1, 0, 0, "a1", "a3", "a4"), false},
		{"3 to 5 in one step", cfg(0, 0, 0, "a1", "a2", "a3"), cfg(1, 0, 0, "a1", "a2", "a3", "a4", "a5"), false},
		{"3 to 4 with prepare quorum 2", cfg(0, 0, 0, "a1", "a2", "a3"), cfg(1, 2, 3, "a1", "a2", "a3", "a4"), false},
		{"3 to 4 with accept quorum 2", cfg(0, 0, 0, "a1", "a2", "a3"), cfg(1, 3, 2, "a1", "a2", "a3", "a4"), false},
		{"shrink the prepare quorum on the same set", cfg(0, 3, 1, "a1", "a2", "a3"), cfg(1, 2, 2, "a1", "a2", "a3"), false},
		{"same set, new epoch (garbage collection)", cfg(4, 0, 0, "a1", "a2", "a3"), cfg(5, 0, 0, "a1", "a2", "a3"), true},
		{"epoch skipped", cfg(0, 0, 0, "a1", "a2", "a3"), cfg(2, 0, 0, "a1", "a2", "a3", "a4"), false},
		{"epoch repeated", cfg(1, 0, 0, "a1", "a2", "a3"), cfg(1, 0, 0, "a1", "a2", "a3", "a4"), false},
		{"invalid next", cfg(0, 0, 0, "a1", "a2", "a3"), cfg(1, 1, 1, "a1", "a2", "a3"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateStep(tt.prev, tt.next)
			if got := err == nil; got != tt.ok {
				t.Fatalf("ValidateStep(%v, %v) = %v, want ok=%v", tt.prev, tt.next, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not match ErrInvalidConfig", err)
			}
			if tt.ok { // the oracle agrees in both directions
				if !bruteMeets(tt.prev, tt.next) || !bruteMeets(tt.next, tt.prev) {
					t.Fatalf("oracle finds disjoint quorums")
				}
			}
		})
	}
	lower := cfg(1, 0, 0, "a1", "a2", "a3")
	lower.Floor = 5
	if err := ValidateStep(lower, cfg(2, 0, 0, "a1", "a2", "a3")); err == nil {
		t.Fatal("a step that lowers the floor passed")
	}
}

// TestPlanSteps checks the plans of the operations the issue names, and that
// every step of every plan intersects its predecessor both ways by the
// exhaustive oracle.
func TestPlanSteps(t *testing.T) {
	base := cfg(7, 0, 0, "a1", "a2", "a3")
	tests := []struct {
		name   string
		from   Config
		target []string
		dead   []string
		want   [][]string
		ok     bool
	}{
		{"grow to 5", base, []string{"a1", "a2", "a3", "a4", "a5"}, nil,
			[][]string{{"a1", "a2", "a3", "a4"}, {"a1", "a2", "a3", "a4", "a5"}}, true},
		{"shrink to 3", cfg(9, 0, 0, "a1", "a2", "a3", "a4", "a5"), []string{"a1", "a2", "a3"}, nil,
			[][]string{{"a1", "a2", "a3", "a5"}, {"a1", "a2", "a3"}}, true},
		{"remove one", base, []string{"a1", "a3"}, nil, [][]string{{"a1", "a3"}}, true},
		{"replace a dead one", base, []string{"a1", "a4", "a3"}, []string{"a2"},
			[][]string{{"a1", "a2", "a3", "a4"}, {"a1", "a3", "a4"}}, true},
		{"replace two dead ones", base, []string{"a1", "a4", "a5"}, []string{"a2", "a3"}, nil, false},
		{"add a dead one", base, []string{"a1", "a2", "a3", "a9"}, []string{"a9"}, nil, false},
		{"nothing to do", base, []string{"a3", "a2", "a1"}, nil, nil, true},
		{"flexible start", cfg(0, 3, 1, "a1", "a2", "a3"), []string{"a1", "a2", "a3", "a4"}, nil, nil, false},
		{"empty target", base, nil, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := PlanSteps(tt.from, tt.target, tt.dead)
			if (err == nil) != tt.ok {
				t.Fatalf("PlanSteps: %v, want ok=%v", err, tt.ok)
			}
			var got [][]string
			prev := tt.from
			for i, s := range steps {
				got = append(got, s.Acceptors)
				if s.Epoch != tt.from.Epoch+uint64(i)+1 {
					t.Errorf("step %d: epoch %d", i, s.Epoch)
				}
				if !bruteMeets(prev, s) || !bruteMeets(s, prev) {
					t.Errorf("step %v -> %v: oracle finds disjoint quorums", prev, s)
				}
				prev = s
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("steps %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConfigBinaryRoundTrip(t *testing.T) {
	for _, c := range []Config{
		cfg(0, 0, 0, "a1"),
		{Acceptors: []string{"a1", "a2", "a3", "a4"}, PrepareQuorum: 3, AcceptQuorum: 2, Epoch: 1 << 40, Floor: 99},
	} {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Config
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip: got %+v, want %+v", got, c)
		}
		for i := range b { // every truncation is an error
			if err := new(Config).UnmarshalBinary(b[:i]); err == nil {
				t.Errorf("%d of %d bytes decoded", i, len(b))
			}
		}
	}
}

// FuzzConfigBinary: arbitrary bytes never panic, and whatever decodes is a
// valid configuration that encodes back to itself.
func FuzzConfigBinary(f *testing.F) {
	b, _ := cfg(3, 0, 0, "a1", "a2", "a3").MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if err := c.UnmarshalBinary(data); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("decoded an invalid config: %v", err)
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Config
		if err := back.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("re-encoding does not round-trip: %+v, %v", back, err)
		}
	})
}

// FuzzMembershipBinary: arbitrary bytes never panic, and a record that
// decodes encodes back to itself.
func FuzzMembershipBinary(f *testing.F) {
	m := Membership{Config: cfg(4, 0, 0, "a1", "a2", "a3", "a4"), Previous: []string{"a1", "a2", "a3"}, Done: 3,
		Target: []string{"a1", "a2", "a4"}, Dead: []string{"a3"}, Retired: []string{"a0"}}
	b, _ := m.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Membership
		if err := m.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Membership
		if err := back.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	})
}

func TestMembershipBinaryRoundTrip(t *testing.T) {
	for _, m := range []Membership{
		{Config: cfg(0, 0, 0, "a1", "a2", "a3")},
		{Config: cfg(4, 0, 0, "a1", "a2", "a3", "a4"), Previous: []string{"a1", "a2", "a3"}, Done: 3,
			Target: []string{}, Dead: []string{"a3"}, Retired: []string{"a0"}},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Membership
		if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, m)
		}
		for i := range b {
			if err := new(Membership).UnmarshalBinary(b[:i]); err == nil {
				t.Errorf("%d of %d bytes decoded", i, len(b))
			}
		}
	}
}
