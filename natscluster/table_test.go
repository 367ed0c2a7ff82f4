package natscluster

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func hb(id string, port int32, ttl time.Duration, kinds ...string) heartbeat {
	return heartbeat{Version: wireVersion, ID: id, Host: "127.0.0.1", Port: port, Kinds: kinds, TTLMillis: ttl.Milliseconds()}
}

func tableIDs(tb *table) []string {
	var out []string
	for _, m := range tb.members() {
		out = append(out, m.Id)
	}
	return out
}

// step is one event applied to a table in TestTable.
type step struct {
	at      time.Duration // offset from t0
	beat    *heartbeat
	leave   string
	expire  bool
	changed bool     // want: the step changed the topology
	members []string // want: the members after the step
}

func TestTable(t *testing.T) {
	self := hb("self", 1, 3*time.Second, "k")
	b := hb("b", 2, 0, "k")
	bMoved := hb("b", 3, 0, "k")
	bKinds := hb("b", 2, 0, "k", "z")
	short := hb("c", 4, 100*time.Millisecond)
	tests := []struct {
		name  string
		self  *heartbeat
		steps []step
	}{
		{
			name:  "self only",
			self:  &self,
			steps: []step{{expire: true, members: []string{"self"}}},
		},
		{
			name: "new member changes, repeat does not",
			self: &self,
			steps: []step{
				{beat: &b, changed: true, members: []string{"b", "self"}},
				{at: time.Second, beat: &b, changed: false, members: []string{"b", "self"}},
			},
		},
		{
			name: "own heartbeat is ignored",
			self: &self,
			steps: []step{
				{beat: &self, changed: false, members: []string{"self"}},
			},
		},
		{
			name: "new address or kinds change",
			self: &self,
			steps: []step{
				{beat: &b, changed: true, members: []string{"b", "self"}},
				{beat: &bMoved, changed: true, members: []string{"b", "self"}},
				{beat: &bKinds, changed: true, members: []string{"b", "self"}},
			},
		},
		{
			name: "expires after table TTL when none announced",
			self: &self,
			steps: []step{
				{beat: &b, changed: true, members: []string{"b", "self"}},
				{at: 2999 * time.Millisecond, expire: true, changed: false, members: []string{"b", "self"}},
				{at: 3 * time.Second, expire: true, changed: true, members: []string{"self"}},
			},
		},
		{
			name: "heartbeat extends the deadline",
			self: &self,
			steps: []step{
				{beat: &b, changed: true, members: []string{"b", "self"}},
				{at: 2 * time.Second, beat: &b},
				{at: 4 * time.Second, expire: true, changed: false, members: []string{"b", "self"}},
				{at: 5 * time.Second, expire: true, changed: true, members: []string{"self"}},
			},
		},
		{
			name: "announced TTL wins",
			self: &self,
			steps: []step{
				{beat: &short, changed: true, members: []string{"c", "self"}},
				{at: 100 * time.Millisecond, expire: true, changed: true, members: []string{"self"}},
			},
		},
		{
			name: "leave removes and blocks stray heartbeats for one TTL",
			self: &self,
			steps: []step{
				{beat: &b, changed: true, members: []string{"b", "self"}},
				{at: time.Second, leave: "b", changed: true, members: []string{"self"}},
				{at: 2 * time.Second, beat: &b, changed: false, members: []string{"self"}},
				{at: 4 * time.Second, expire: true, changed: false, members: []string{"self"}},
				{at: 4 * time.Second, beat: &b, changed: true, members: []string{"b", "self"}},
			},
		},
		{
			name: "leave of unknown or self changes nothing",
			self: &self,
			steps: []step{
				{leave: "nobody", changed: false, members: []string{"self"}},
				{leave: "self", changed: false, members: []string{"self"}},
			},
		},
		{
			name: "client table has no self",
			steps: []step{
				{expire: true, members: nil},
				{beat: &b, changed: true, members: []string{"b"}},
				{beat: &self, changed: true, members: []string{"b", "self"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(tt.self, 3*time.Second)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				var changed bool
				switch {
				case s.beat != nil:
					changed = tb.heartbeat(*s.beat, now)
				case s.leave != "":
					changed = tb.leave(s.leave, now)
				case s.expire:
					changed = len(tb.expire(now)) > 0
				}
				if changed != s.changed {
					t.Errorf("step %d: changed: got %v, want %v", i, changed, s.changed)
				}
				if s.members != nil || s.expire {
					if got := tableIDs(tb); !slices.Equal(got, s.members) {
						t.Errorf("step %d: members: got %v, want %v", i, got, s.members)
					}
				}
			}
		})
	}
}

func TestTableNextDeadline(t *testing.T) {
	tb := newTable(nil, 3*time.Second)
	if _, ok := tb.nextDeadline(); ok {
		t.Fatal("empty table has a deadline")
	}
	tb.heartbeat(hb("a", 1, 0), t0)
	tb.heartbeat(hb("b", 2, time.Second), t0.Add(500*time.Millisecond))
	got, ok := tb.nextDeadline()
	if want := t0.Add(1500 * time.Millisecond); !ok || !got.Equal(want) {
		t.Fatalf("got %v %v, want %v true", got, ok, want)
	}
	if gone := tb.expire(got); !slices.Equal(gone, []string{"b"}) {
		t.Fatalf("expired: got %v, want [b]", gone)
	}
	got, ok = tb.nextDeadline()
	if want := t0.Add(3 * time.Second); !ok || !got.Equal(want) {
		t.Fatalf("got %v %v, want %v true", got, ok, want)
	}
}

func TestTablePostpone(t *testing.T) {
	tb := newTable(nil, time.Second)
	tb.heartbeat(hb("a", 1, 0), t0)
	tb.postpone(5 * time.Second)
	if gone := tb.expire(t0.Add(5999 * time.Millisecond)); len(gone) != 0 {
		t.Fatalf("expired %v before the postponed deadline", gone)
	}
	if gone := tb.expire(t0.Add(6 * time.Second)); !slices.Equal(gone, []string{"a"}) {
		t.Fatalf("expired: got %v, want [a]", gone)
	}
}

func TestTableMembersAreCopies(t *testing.T) {
	b := hb("b", 2, 0, "k")
	tb := newTable(nil, time.Second)
	tb.heartbeat(b, t0)
	ms := tb.members()
	ms[0].Kinds[0] = "changed"
	ms[0].Port = 9
	again := tb.members()
	if again[0].Kinds[0] != "k" || again[0].Port != 2 {
		t.Fatalf("table shares memory with returned members: %v", again[0])
	}
}

func TestTableIncarnations(t *testing.T) {
	inc := func(id, instance string, port int32) heartbeat {
		h := hb(id, port, 0, "k")
		h.Instance = instance
		return h
	}
	self := inc("s.1", "s", 1)
	tb := newTable(&self, time.Second)

	// The member's own heartbeats, of any incarnation, are not members.
	for _, own := range []heartbeat{self, inc("s.2", "s", 1)} {
		if tb.heartbeat(own, t0) || !tb.isOwn(own) {
			t.Fatalf("own heartbeat %s counted as a member", own.ID)
		}
	}
	// A new incarnation replaces the old one at once, and the old one's
	// late heartbeats do not bring it back for one TTL.
	if !tb.heartbeat(inc("b.1", "b", 2), t0) {
		t.Fatal("b.1 not added")
	}
	if !tb.heartbeat(inc("b.2", "b", 2), t0.Add(time.Millisecond)) {
		t.Fatal("b.2 did not change the topology")
	}
	if got := tableIDs(tb); !slices.Equal(got, []string{"b.2", "s.1"}) {
		t.Fatalf("after b.2: got %v", got)
	}
	if tb.heartbeat(inc("b.1", "b", 2), t0.Add(2*time.Millisecond)) {
		t.Fatal("a late heartbeat of b.1 brought it back")
	}
	// Senders that predate incarnations are never replaced.
	if !tb.heartbeat(hb("old", 3, 0, "k"), t0) || !tb.heartbeat(inc("new.1", "", 4), t0) {
		t.Fatal("members without an instance not added")
	}
	if got := tableIDs(tb); !slices.Equal(got, []string{"b.2", "new.1", "old", "s.1"}) {
		t.Fatalf("with old senders: got %v", got)
	}

	// Fenced: the others without kinds, not self; members() unchanged.
	fenced := tb.fenced()
	var ids []string
	for _, m := range fenced {
		ids = append(ids, m.Id)
		if len(m.Kinds) != 0 {
			t.Fatalf("fenced topology lists kinds %v for %s", m.Kinds, m.Id)
		}
	}
	if !slices.Equal(ids, []string{"b.2", "new.1", "old"}) {
		t.Fatalf("fenced: got %v", ids)
	}
	if ms := tb.members(); len(ms) != 4 || len(ms[0].Kinds) != 1 {
		t.Fatalf("members after fenced(): %v", ms)
	}

	next := inc("s.2", "s", 1)
	tb.setSelf(&next)
	if got := tableIDs(tb); !slices.Equal(got, []string{"b.2", "new.1", "old", "s.2"}) {
		t.Fatalf("after setSelf: got %v", got)
	}
}
