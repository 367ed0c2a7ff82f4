package synodtest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/protosynod/protosynod/synod"
)

// The simulated operator runs membership changes and garbage collection
// during the load, with the step order of synod's package doc ("Membership
// change", "Deletion"): claim the next configuration, fence (install it on
// every living acceptor of the old and new sets, over the lossy network,
// resending until each acknowledged), rescan every key with full rounds of
// its own proposer, then take the next step. Garbage collection fences a
// configuration with the same acceptors and a raised ballot floor, confirms
// that no living acceptor holds a value for the key below the floor, and
// has every living acceptor forget it. Faults of type Fault break this order
// on purpose.

type actionKind uint8

const (
	actAdd actionKind = iota
	actRemove
	actReplace
	actGC
)

func (k actionKind) String() string { return [...]string{"add", "remove", "replace", "gc"}[k] }

type opPhase uint8

const (
	phIdle opPhase = iota
	phFence
	phRescan
	phForget
)

type adminKind uint8

const (
	adminInstall adminKind = iota
	adminForget
)

// adminMsg is an operator request to one acceptor, or its reply (err).
type adminMsg struct {
	kind  adminKind
	cfg   synod.Config
	key   string
	floor uint64
	epoch uint64 // the fence this message belongs to
	err   error
}

func (m adminMsg) String() string {
	if m.kind == adminInstall {
		return fmt.Sprintf("install %v err=%v", m.cfg, m.err)
	}
	return fmt.Sprintf("forget %s floor %d err=%v", m.key, m.floor, m.err)
}

type simOperator struct {
	s         *sim
	pp        *simProposer
	actions   int                // left to start
	steps     []synod.Config     // left in the current action
	prev, cur synod.Config       // in force; being installed (== prev when idle)
	phase     opPhase            //
	pending   map[int]bool       // acceptors yet to acknowledge the fence
	forgets   map[[2]string]bool // (key, acceptor) yet to acknowledge a forget
	rescan    []string           // keys left to rescan
	gc        bool               // the current step is a garbage collection
	gcKeys    []string           // keys confirmed collectable
	dead      []string
	retired   []string
	token     uint64
	newIDs    int
}

func (s *sim) newOperator(popts []synod.ProposerOption) {
	idx := len(s.props)
	p, err := synod.NewProposer(synod.ProposerID("op", s.cfg.Seed), s.synCfg, popts...)
	if err != nil {
		panic(fmt.Sprintf("synodtest: operator: %v", err))
	}
	pp := &simProposer{idx: idx, p: p, opts: popts, seen: make(map[string]string), operator: true}
	s.props = append(s.props, pp)
	s.cut = append(s.cut, make([]bool, len(s.accs)))
	s.op = &simOperator{s: s, pp: pp, actions: s.cfg.Operations, prev: s.synCfg, cur: s.synCfg, newIDs: len(s.accs)}
}

// addAcceptor starts a new acceptor with an empty store and a fresh ID.
func (o *simOperator) addAcceptor() string {
	s := o.s
	id := fmt.Sprintf("a%d", o.newIDs)
	o.newIDs++
	st := synod.NewMemoryStorage()
	s.idx[id] = len(s.accs)
	s.accs = append(s.accs, &simAcceptor{id: id, store: st, acc: s.newAcceptor(id, st)})
	for p := range s.cut {
		s.cut[p] = append(s.cut[p], false)
	}
	return id
}

func (o *simOperator) living(ids []string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(o.dead, id) })
}

// onTimer starts the next action when idle, or resends what is unacknowledged.
func (o *simOperator) onTimer(token uint64) {
	s := o.s
	if token != o.token {
		return
	}
	if o.phase == phIdle {
		o.startAction()
		return
	}
	switch o.phase {
	case phFence:
		for _, a := range slices.Sorted(maps.Keys(o.pending)) {
			o.send(a, adminMsg{kind: adminInstall, cfg: o.cur, epoch: o.cur.Epoch})
		}
	case phForget:
		for _, kf := range slices.SortedFunc(maps.Keys(o.forgets), func(a, b [2]string) int {
			return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
		}) {
			o.send(s.idx[kf[1]], adminMsg{kind: adminForget, key: kf[0], floor: o.cur.Floor, epoch: o.cur.Epoch})
		}
	default:
		return
	}
	o.arm()
}

func (o *simOperator) arm() {
	o.token++
	o.s.schedule(o.s.cfg.PhaseTimeout, event{kind: evOperator, token: o.token})
}

func (o *simOperator) send(a int, m adminMsg) {
	o.s.send(event{kind: evAdmin, p: o.pp.idx, a: a, admin: m})
}

func (o *simOperator) startAction() {
	s := o.s
	if o.actions == 0 {
		s.tracef("operator done: %v", o.prev)
		if s.running--; s.running == 0 {
			s.finish()
		}
		return
	}
	o.actions--
	members := o.living(o.prev.Acceptors)
	kinds := []actionKind{actAdd, actGC}
	if len(members) > 3 {
		kinds = append(kinds, actRemove)
	}
	if len(members) == len(o.prev.Acceptors) && len(members) <= 4 {
		kinds = append(kinds, actReplace)
	}
	kind := kinds[s.rng.IntN(len(kinds))]
	if s.cfg.GCOnly {
		kind = actGC
	}
	target := slices.Clone(o.prev.Acceptors)
	switch kind {
	case actAdd:
		target = append(target, o.addAcceptor())
	case actRemove:
		victim := members[s.rng.IntN(len(members))]
		target = slices.DeleteFunc(target, func(id string) bool { return id == victim })
		o.retired = append(o.retired, victim)
	case actReplace:
		victim := members[s.rng.IntN(len(members))]
		a := s.accs[s.idx[victim]]
		a.dead, a.acc = true, nil
		a.store = synod.NewMemoryStorage() // its disk is gone
		o.dead = append(o.dead, victim)
		s.tracef("operator: %s dies for good", victim)
		fresh := o.addAcceptor()
		target[slices.Index(target, victim)] = fresh
	case actGC:
		o.startGC()
		return
	}
	steps, err := synod.PlanSteps(o.prev, target, o.dead)
	if err != nil {
		s.violation("operator: plan %s to %v: %v", kind, target, err)
		o.actions = 0
		o.afterAction()
		return
	}
	s.tracef("operator: %s: %v -> %v in %d steps", kind, o.prev.Acceptors, target, len(steps))
	o.steps = steps
	o.nextStep()
}

func (o *simOperator) afterAction() {
	o.phase = phIdle
	o.cur = o.prev
	o.token++
	o.s.schedule(1+o.s.rng.Int64N(o.s.cfg.OpTimeout), event{kind: evOperator, token: o.token})
}

func (o *simOperator) nextStep() {
	if len(o.steps) == 0 {
		o.afterAction()
		return
	}
	o.cur, o.steps = o.steps[0], o.steps[1:]
	o.gc = false
	if o.s.cfg.Fault == FaultRescanBeforeFence {
		o.startRescan()
		return
	}
	o.startFence()
}

// startFence installs o.cur on every living acceptor of the old and new
// sets, retrying until each acknowledged.
func (o *simOperator) startFence() {
	s := o.s
	o.phase = phFence
	o.pending = make(map[int]bool)
	for _, id := range o.living(append(slices.Clone(o.prev.Acceptors), o.cur.Acceptors...)) {
		o.pending[s.idx[id]] = true
	}
	s.tracef("operator: fence %v on %d acceptors", o.cur, len(o.pending))
	for _, a := range slices.Sorted(maps.Keys(o.pending)) {
		o.send(a, adminMsg{kind: adminInstall, cfg: o.cur, epoch: o.cur.Epoch})
	}
	o.arm()
}

func (o *simOperator) onAdminReply(ev event) {
	s := o.s
	m := ev.admin
	if m.epoch != o.cur.Epoch {
		return // a late reply to an earlier step
	}
	if m.err != nil {
		s.violation("operator: %s at a%d: %v", m, ev.a, m.err)
		return
	}
	switch {
	case o.phase == phFence && m.kind == adminInstall:
		delete(o.pending, ev.a)
		if len(o.pending) == 0 {
			o.afterFence()
		}
	case o.phase == phForget && m.kind == adminForget:
		delete(o.forgets, [2]string{m.key, s.accs[ev.a].id})
		if len(o.forgets) == 0 {
			o.finishGC()
		}
	}
}

func (o *simOperator) afterFence() {
	s := o.s
	o.pending = nil
	o.token++ // stop resending
	o.pp.p.Adopt(o.cur)
	s.tracef("operator: fenced %v", o.cur)
	switch {
	case o.gc:
		o.confirmGC()
	case s.cfg.Fault == FaultRescanBeforeFence || s.cfg.Fault == FaultNoRescan:
		o.stepDone()
	default:
		o.startRescan()
	}
}

func (o *simOperator) startRescan() {
	o.phase = phRescan
	o.rescan = slices.Clone(o.s.keys)
	if o.s.cfg.Fault == FaultRescanBeforeFence {
		o.pp.p.Adopt(o.cur) // rescan under the new configuration, unfenced
	}
	o.s.tracef("operator: rescan %d keys under %v", len(o.rescan), o.cur)
	o.s.schedule(1, event{kind: evStart, p: o.pp.idx})
}

// rescanned is called when the operator's round on key ends.
func (o *simOperator) rescanned(key string, ok bool) {
	if ok && len(o.rescan) > 0 && o.rescan[0] == key {
		o.rescan = o.rescan[1:]
	}
	if len(o.rescan) > 0 {
		o.s.schedule(1+o.s.rng.Int64N(o.s.cfg.MaxDelay), event{kind: evStart, p: o.pp.idx})
		return
	}
	if o.s.cfg.Fault == FaultRescanBeforeFence {
		o.startFence() // afterFence ends the step without a second rescan
		return
	}
	o.stepDone()
}

func (o *simOperator) stepDone() {
	o.s.res.Reconfigurations++
	o.s.tracef("operator: step to %v done", o.cur)
	o.prev = o.cur
	o.nextStep()
}

// startGC picks the keys every living member holds no value for, and fences
// a configuration with the same acceptors and a floor above their ballots.
func (o *simOperator) startGC() {
	s := o.s
	ctx := context.Background()
	var floor uint64
	o.gcKeys = nil
	for _, k := range s.keys {
		empty := true
		var top uint64
		for _, id := range o.living(o.prev.Acceptors) {
			st, _ := s.accs[s.idx[id]].store.Load(ctx, k)
			if len(st.Value) != 0 {
				empty = false
			}
			top = max(top, st.Promised.Counter, st.Accepted.Counter)
		}
		if empty && top > 0 {
			o.gcKeys = append(o.gcKeys, k)
			floor = max(floor, top)
		}
	}
	if len(o.gcKeys) == 0 {
		s.tracef("operator: gc: nothing to collect")
		o.afterAction()
		return
	}
	o.cur = o.prev.Clone()
	o.cur.Epoch++
	o.cur.Floor = max(o.prev.Floor, floor)
	o.gc = true
	s.tracef("operator: gc of %v with floor %d", o.gcKeys, o.cur.Floor)
	if s.cfg.Fault == FaultGCNoFence {
		o.cur = o.prev
		o.cur.Floor = max(o.prev.Floor, floor) // remembered for the removal only
		o.confirmGC()
		return
	}
	o.startFence()
}

// confirmGC keeps the keys no living member holds a value for at or below the
// floor (these states can no longer change), and asks every living member
// to forget them.
func (o *simOperator) confirmGC() {
	s := o.s
	ctx := context.Background()
	floor := o.cur.Floor
	var keys []string
	for _, k := range o.gcKeys {
		ok := true
		for _, id := range o.living(o.cur.Acceptors) {
			st, _ := s.accs[s.idx[id]].store.Load(ctx, k)
			if st.Accepted.Counter <= floor && len(st.Value) != 0 {
				ok = false
			}
		}
		if ok {
			keys = append(keys, k)
		}
	}
	o.gcKeys = keys
	for _, k := range keys {
		s.collectedFloor[k] = max(s.collectedFloor[k], floor)
		if b, ok := s.acked[k]; ok && b.Counter <= floor {
			delete(s.acked, k) // its tombstone goes now; reads check the rest
		}
	}
	if s.cfg.Fault == FaultGCNoFence {
		for _, k := range keys {
			for _, id := range o.living(o.cur.Acceptors) {
				a := s.accs[s.idx[id]]
				if st, _ := a.store.Load(ctx, k); len(st.Value) == 0 && st.Promised.Counter <= floor && st.Accepted.Counter <= floor {
					_ = a.store.Delete(ctx, k)
					s.res.Collected++
				}
			}
		}
		o.cur.Floor = o.prev.Floor
		s.res.Collections++
		o.afterAction()
		return
	}
	o.phase = phForget
	o.forgets = make(map[[2]string]bool)
	for _, k := range keys {
		for _, id := range o.living(o.cur.Acceptors) {
			o.forgets[[2]string{k, id}] = true
			o.send(s.idx[id], adminMsg{kind: adminForget, key: k, floor: floor, epoch: o.cur.Epoch})
		}
	}
	if len(o.forgets) == 0 {
		o.finishGC()
		return
	}
	o.arm()
}

func (o *simOperator) finishGC() {
	o.token++
	o.s.res.Collections++
	o.s.tracef("operator: gc done: %v", o.gcKeys)
	o.prev = o.cur
	o.afterAction()
}

// deliverAdmin serves an operator request at an acceptor.
func (s *sim) deliverAdmin(ev event) {
	a := s.accs[ev.a]
	if a.acc == nil || s.cut[ev.p][ev.a] {
		s.tracef("lost %s (acceptor down or cut)", ev.describe())
		return
	}
	ctx := context.Background()
	m := ev.admin
	s.admin = true
	defer func() { s.admin = false }()
	switch m.kind {
	case adminInstall:
		_, m.err = a.acc.Install(ctx, m.cfg)
	case adminForget:
		var removed bool
		removed, m.err = a.acc.Forget(ctx, m.key, m.floor)
		if removed {
			s.res.Collected++
		}
	}
	s.tracef("deliver %s", ev.describe())
	s.send(event{kind: evAdminReply, p: ev.p, a: ev.a, admin: m})
}
