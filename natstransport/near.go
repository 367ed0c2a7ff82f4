package natstransport

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A Transport measures how far each acceptor it sends to is (see Near): it
// sends each a few empty request frames, which an acceptor answers at once
// with an empty reply frame, outside its queue and without touching its
// storage, and keeps the shortest round trips. An acceptor reached through
// the Transport's own NATS server answers sooner than one behind another
// server (a route hop each way), and one in another zone much later.
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
	// nearSlack is how much longer than the nearest acceptor's round trip
	// another's may be and still count as near: a hop to another server
	// costs more, scheduling noise less.
	nearSlack = 100 * time.Microsecond
)

// nearness is a Transport's knowledge of its acceptors' distances.
type nearness struct {
	// near, kick, ctx and stop are set once, by newNearness.
	near atomic.Pointer[[]string] // nil: nothing is nearer than the rest
	kick chan struct{}            // a measurement is due now (buffered, 1)
	ctx  context.Context          // ends with Close, and the pings with it
	stop context.CancelFunc

	mu      sync.Mutex
	history map[string][]time.Duration // acceptor -> its last rounds' shortest round trips
	gen     uint64                     // counts forget calls: a measurement begun before one is dropped
}

func newNearness() nearness {
	ctx, stop := context.WithCancel(context.Background())
	return nearness{kick: make(chan struct{}, 1), ctx: ctx, stop: stop, history: make(map[string][]time.Duration)}
}

// Near implements synod.Nearness: the acceptors whose round trip from this
// Transport is within nearSlack (or half again, if more) of the shortest,
// when that is some of the acceptors it sends to and not all; otherwise
// nil. A Transport measures when it first sends to an acceptor, after each
// reconnect, and every WithNearness interval.
func (t *Transport) Near() []string {
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
		if t.nearby.ctx.Err() != nil {
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
	near := nearSet(est, len(subjects))
	if old := n.near.Load(); (old == nil) != (near == nil) || old != nil && !slices.Equal(*old, near) {
		t.log.Debug("natstransport: near acceptors", "near", near, "round trips", fmt.Sprint(est))
		if near == nil {
			n.near.Store(nil)
		} else {
			n.near.Store(&near)
		}
	}
}

// nearSet returns the acceptors of est (round trips of known of them) within
// nearSlack or half again of the shortest, sorted; nil if that is none or
// every one of the known acceptors.
func nearSet(est map[string]time.Duration, known int) []string {
	if len(est) == 0 {
		return nil
	}
	best := time.Duration(1<<63 - 1)
	for _, d := range est {
		best = min(best, d)
	}
	limit := best + max(nearSlack, best/2)
	var near []string
	for id, d := range est {
		if d <= limit {
			near = append(near, id)
		}
	}
	if len(near) == known {
		return nil
	}
	slices.Sort(near)
	return near
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
