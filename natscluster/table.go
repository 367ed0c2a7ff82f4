package natscluster

import (
	"slices"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
)

// table is the membership view of one provider. It is pure: it does no I/O,
// never reads the clock (callers pass now) and is not safe for concurrent
// use. The provider's run loop owns it.
type table struct {
	self *heartbeat // nil for a cluster client; see setSelf
	ttl  time.Duration
	live map[string]entry
	// left remembers members that said goodbye, until the time stored, so
	// a stray heartbeat cannot bring them back. protoactor's block list
	// keeps them out of the cluster for good anyway.
	left map[string]time.Time
	// expired remembers members that expired by their TTL, until the
	// time stored: protoactor blocks them, so if one turns out to be alive
	// it must come back under a new ID (see runner.handle).
	expired map[string]time.Time
}

// rememberExpired is how long a table remembers an expired member.
const rememberExpired = 10 * time.Minute

type entry struct {
	hb       heartbeat
	deadline time.Time
}

// newTable returns a table that always contains self (when not nil) and
// expires other members by the TTL they announce, or by ttl when they
// announce none.
func newTable(self *heartbeat, ttl time.Duration) *table {
	return &table{
		self:    self,
		ttl:     ttl,
		live:    make(map[string]entry),
		left:    make(map[string]time.Time),
		expired: make(map[string]time.Time),
	}
}

// setSelf replaces the member's own heartbeat, when it comes back under a
// new incarnation.
func (t *table) setSelf(self *heartbeat) { t.self = self }

// heartbeat records hb received at now. It reports whether the topology
// changed: a new member, a known member with a new address or kinds, or a
// member replaced by a new incarnation of the same instance. The member's
// own heartbeats are ignored.
func (t *table) heartbeat(hb heartbeat, now time.Time) bool {
	if t.isOwn(hb) {
		return false
	}
	if until, ok := t.left[hb.ID]; ok && now.Before(until) {
		return false
	}
	ttl := hb.ttl()
	if ttl <= 0 {
		ttl = t.ttl
	}
	changed := false
	if hb.Instance != "" {
		for id, e := range t.live {
			if id != hb.ID && e.hb.Instance == hb.Instance {
				// A new incarnation: the old one is gone for good, and
				// its late heartbeats must not bring it back.
				delete(t.live, id)
				t.left[id] = now.Add(ttl)
				changed = true
			}
		}
	}
	old, known := t.live[hb.ID]
	t.live[hb.ID] = entry{hb: hb, deadline: now.Add(ttl)}
	return changed || !known || !sameMember(old.hb, hb)
}

// wasExpired reports whether the member id expired by its TTL recently.
// Its heartbeats are not taken back: protoactor blocks that ID anyway.
func (t *table) wasExpired(id string) bool {
	_, ok := t.expired[id]
	return ok
}

// leave removes the member id at now and ignores its heartbeats for one
// TTL. It reports whether the member was live.
func (t *table) leave(id string, now time.Time) bool {
	if t.isSelf(id) {
		return false
	}
	t.left[id] = now.Add(t.ttl)
	if _, ok := t.live[id]; !ok {
		return false
	}
	delete(t.live, id)
	return true
}

// expire removes every member whose deadline is not after now and forgets
// old departures. It returns the IDs of the expired members, sorted.
func (t *table) expire(now time.Time) []string {
	var gone []string
	for id, e := range t.live {
		if !now.Before(e.deadline) {
			gone = append(gone, id)
			delete(t.live, id)
			t.expired[id] = now.Add(max(rememberExpired, 10*t.ttl))
		}
	}
	for id, until := range t.expired {
		if !now.Before(until) {
			delete(t.expired, id)
		}
	}
	for id, until := range t.left {
		if !now.Before(until) {
			delete(t.left, id)
		}
	}
	sort.Strings(gone)
	return gone
}

// postpone moves every live member's deadline d later. The provider calls
// it after a pause of its own, during which no heartbeat could arrive.
func (t *table) postpone(d time.Duration) {
	for id, e := range t.live {
		e.deadline = e.deadline.Add(d)
		t.live[id] = e
	}
}

// nextDeadline returns the earliest time at which expire would remove a
// member, and false when no other member is live.
func (t *table) nextDeadline() (time.Time, bool) {
	var next time.Time
	for _, e := range t.live {
		if next.IsZero() || e.deadline.Before(next) {
			next = e.deadline
		}
	}
	return next, !next.IsZero()
}

// members returns the live members, self included, sorted by ID. The
// returned values are fresh copies that the caller may keep.
func (t *table) members() cluster.Members { return t.topology(true) }

// fenced returns the topology of a member that must host no grains: the
// other live members without their kinds, and not the member itself. With
// it protoactor's disthash places no grain anywhere, so the member stops
// its activations and asks no other member to activate one.
func (t *table) fenced() cluster.Members { return t.topology(false) }

func (t *table) topology(hosting bool) cluster.Members {
	ms := make(cluster.Members, 0, len(t.live)+1)
	if t.self != nil && hosting {
		ms = append(ms, toMember(*t.self))
	}
	for _, e := range t.live {
		m := toMember(e.hb)
		if !hosting {
			m.Kinds = nil
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Id < ms[j].Id })
	return ms
}

func (t *table) isSelf(id string) bool { return t.self != nil && t.self.ID == id }

// isOwn reports whether hb was sent by this member, in any incarnation.
func (t *table) isOwn(hb heartbeat) bool {
	return t.self != nil && (hb.ID == t.self.ID || hb.Instance != "" && hb.Instance == t.self.Instance)
}

func sameMember(a, b heartbeat) bool {
	return a.Host == b.Host && a.Port == b.Port && slices.Equal(a.Kinds, b.Kinds)
}

func toMember(hb heartbeat) *cluster.Member {
	return &cluster.Member{
		Id:    hb.ID,
		Host:  hb.Host,
		Port:  hb.Port,
		Kinds: slices.Clone(hb.Kinds),
	}
}
