package natstransport

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A Transport measures how far each acceptor it sends to is (see Near): it
// sends each a few empty request frames, which an acceptor answers at once
// with an empty reply frame, outside its queue and without touching its
// storage, and keeps the shortest round trips. An acceptor in another zone
// or region answers milliseconds later than one in the proposer's; one
// behind another server of the same cluster, a route hop each way, only
// a little later, which Near does not count (see nearSlack).
const (
	// defaultNearEvery is how often a Transport measures by default.
	defaultNearEvery = 30 * time.Second
	// nearPings is how many empty frames one measurement sends each
	// acceptor, one after another; the shortest round trip counts.
	nearPings = 3
	// nearRounds is how many measurements an acceptor's distance is the
	// shortest of (five minutes of them at the default interval): a round
	// trip is never shorter than the path, while a busy acceptor, server
	// or client makes it longer for a while.
	nearRounds = 10
	// nearFirstEvery is the interval after the first measurement, which
	// doubles up to the WithNearness interval: the first rounds come
	// quickly, so that a busy moment at the start does not decide for long.
	nearFirstEvery = time.Second
	// nearPingTimeout bounds one ping.
	nearPingTimeout = time.Second
	// nearSlack is how much longer than twice the nearest acceptor's round
	// trip another's may be and still count as near. Hops to another
	// server in one data center cost well under it, and preferring the
	// acceptor behind the proposer's own server bought nothing measurable
	// (synod-bench's process layout, -nearness on and off), while it took
	// the spread over acceptors away from the proposer ID and moved with
	// every busy moment; another zone or region costs more.
	nearSlack = time.Millisecond
)

// nearness is a Transport's knowledge of its acceptors' distances.
type nearness struct {
	// near, kick, ctx and stop are set once, by newNearness.
	near atomic.Pointer[[][]string] // nil: nothing is nearer than the rest
	kick chan struct{}              // a measurement is due now (buffered, 1)
	ctx  context.Context            // ends with Close, and the pings with it
	stop context.CancelFunc

	mu      sync.Mutex
	history map[string][]time.Duration // acceptor -> its last rounds' shortest round trips
	gen     uint64                     // counts forget calls: a measurement begun before one is dropped
}

func newNearness() nearness {
	ctx, stop := context.WithCancel(context.Background())
	return nearness{kick: make(chan struct{}, 1), ctx: ctx, stop: stop, history: make(map[string][]time.Duration)}
}

// Near implements synod.Nearness: the acceptors this Transport reached, in
// tiers. The first tier holds those whose round trip is at most twice the
// shortest plus a millisecond; each next tier likewise of the acceptors
// left, measured from the shortest of them. It is nil when the first tier
// holds every acceptor the Transport sends to: they are about equally near
// (as in one data center), and which of them a subset takes is left to the
// proposer ID. A Transport measures when it first sends to an acceptor,
// after each reconnect, and every WithNearness interval.
func (t *Transport) Near() [][]string {
	if p := t.nearby.near.Load(); p != nil {
		return *p
	}
	return nil
}

// forget drops the distances measured so far, and those of a measurement
// under way: nothing is near until the next one.
func (n *nearness) forget() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.history)
	n.gen++
	n.near.Store(nil)
}

// remeasure asks for a measurement now, without waiting for it.
func (n *nearness) remeasure() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// measureLoop measures the acceptors' distances when asked to and then
// after nearFirstEvery, twice that, and so on up to t.opts.nearEvery, until
// Close.
func (t *Transport) measureLoop() {
	every := t.opts.nearEvery
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-t.nearby.ctx.Done():
			return
		case <-t.nearby.kick:
			every = min(nearFirstEvery, t.opts.nearEvery)
		case <-timer.C:
			every = min(2*every, t.opts.nearEvery)
		}
		t.measure()
		timer.Reset(every)
	}
}

// measure pings every acceptor the Transport knows and updates Near.
func (t *Transport) measure() {
	t.mu.Lock()
	subjects := make(map[string]string, len(t.peers))
	for id, p := range t.peers {
		subjects[id] = p.subject
	}
	t.mu.Unlock()
	if len(subjects) == 0 {
		return
	}
	n := &t.nearby
	n.mu.Lock()
	gen := n.gen
	n.mu.Unlock()
	rtts := make(map[string]time.Duration, len(subjects))
	for id, subj := range subjects {
		if n.ctx.Err() != nil {
			return // closed
		}
		if d, err := t.ping(id, subj); err == nil {
			rtts[id] = d
		} else {
			t.log.Debug("natstransport: no round trip measured", "acceptor", id, "err", err)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gen != gen {
		return // the connection came back meanwhile: these went through the old server
	}
	est := make(map[string]time.Duration, len(subjects))
	for id := range subjects {
		d, ok := rtts[id]
		if !ok {
			delete(n.history, id) // unreachable now: not near, whatever it was
			continue
		}
		h := append(n.history[id], d)
		if len(h) > nearRounds {
			h = h[len(h)-nearRounds:]
		}
		n.history[id] = h
		est[id] = slices.Min(h)
	}
	near := nearTiers(est, len(subjects))
	if old := n.near.Load(); (old == nil) != (near == nil) || old != nil && !slices.EqualFunc(*old, near, slices.Equal[[]string]) {
		t.log.Debug("natstransport: acceptors by distance", "tiers", fmt.Sprint(near), "round trips", fmt.Sprint(est))
		if near == nil {
			n.near.Store(nil)
		} else {
			n.near.Store(&near)
		}
	}
}

// nearTiers returns the acceptors of est (round trips of known of them) in
// tiers: the first holds those at most twice the shortest plus nearSlack
// away, sorted, and each next tier likewise of the acceptors left. It is
// nil if est is empty, or if the first tier holds every known acceptor.
func nearTiers(est map[string]time.Duration, known int) [][]string {
	ids := make([]string, 0, len(est))
	for id := range est {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := cmp.Compare(est[a], est[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var tiers [][]string
	for len(ids) > 0 {
		limit := 2*est[ids[0]] + nearSlack
		i := 1
		for i < len(ids) && est[ids[i]] <= limit {
			i++
		}
		tier := slices.Clone(ids[:i])
		slices.Sort(tier)
		tiers = append(tiers, tier)
		ids = ids[i:]
	}
	if len(tiers) == 0 || len(tiers[0]) == known {
		return nil
	}
	return tiers
}

// emptyFrame is the request frame a ping sends: version 2, no items.
var emptyFrame = appendRequestFrameHeader(nil, 0)

// ping returns the shortest of nearPings round trips of an empty frame to
// acceptor id on subj.
func (t *Transport) ping(id, subj string) (time.Duration, error) {
	var best time.Duration
	for range nearPings {
		ctx, cancel := context.WithTimeout(t.nearby.ctx, nearPingTimeout)
		start := time.Now()
		m, err := t.nc.RequestWithContext(ctx, subj, emptyFrame)
		d := time.Since(start)
		cancel()
		if err == nil {
			err = replyError(id, m)
		}
		if err == nil {
			var f ReplyFrame
			if f, err = DecodeReplyFrame(m.Data, t.opts.limits); err == nil && f.From != id {
				err = fmt.Errorf("%w: ping answered by %q", ErrMalformed, f.From)
			}
		}
		if err != nil {
			return 0, fmt.Errorf("ping acceptor %s: %w", id, err)
		}
		if best == 0 || d < best {
			best = d
		}
	}
	return best, nil
}
