package natscluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// msgBuffer is the capacity of the subscription channel. When it is full
// NATS drops messages and reports a slow consumer on the connection; a lost
// heartbeat costs nothing while the TTL spans several intervals.
const msgBuffer = 1024

// runner is the provider's I/O driver around a table. Everything but
// construction runs on the provider's single goroutine.
type runner struct {
	nc       *nats.Conn
	opts     options
	rc       runConfig
	subjects subjects
	table    *table
	log      *slog.Logger

	msgs chan *nats.Msg
	sub  *nats.Subscription

	self       *heartbeat // nil for a client; changes when the member fences itself
	publishErr bool       // the last heartbeat failed, to log transitions only

	// Fencing, members only (doc.go "Rejoining"). Every heartbeat carries
	// a sequence number; when it comes back (NATS echoes a connection's own
	// messages) the member knows the others received what it sent then.
	echo        bool               // own messages come back: the connection does not set NoEcho
	seq         uint64             // of the last heartbeat sent
	sent        [sentRing]sentBeat // send times of the last heartbeats, by seq % sentRing
	confirmed   time.Time          // send time of the newest own heartbeat that came back
	echoAt      time.Time          // when an own heartbeat last came back
	fenced      bool               // hosting nothing until an own heartbeat comes back
	fencedAt    time.Time
	incarnation int // of self.ID
}

// sentRing is how many heartbeats' send times a runner remembers. An own
// heartbeat that comes back later than that only tells that the connection
// works, not when the others last heard from the member.
const sentRing = 64

type sentBeat struct {
	seq uint64
	at  time.Time
}

func newRunner(nc *nats.Conn, opts options, rc runConfig) *runner {
	r := &runner{
		nc:       nc,
		opts:     opts,
		rc:       rc,
		subjects: newSubjects(opts.prefix, rc.clusterName),
		table:    newTable(rc.self, opts.ttl),
		log:      opts.logger.With(slog.String("cluster", rc.clusterName), slog.String("member", rc.id)),
		msgs:     make(chan *nats.Msg, msgBuffer),
		self:     rc.self,
		echo:     nc != nil && !nc.Opts.NoEcho,
		// Starting counts as hearing back: the first heartbeat goes out
		// now and its echo is due within a round trip.
		confirmed:   time.Now(),
		echoAt:      time.Now(),
		incarnation: 1,
	}
	if rc.self != nil && !r.echo && nc != nil {
		r.log.Warn("the NATS connection sets NoEcho: this member cannot tell when it is cut off, and after a cut longer than the TTL it will not rejoin")
	}
	return r
}

// fenceAfter is how long a member may go without one of its heartbeats
// coming back before it fences itself. The others expire it one TTL after
// the last heartbeat they received, which was sent no earlier than the last
// one that came back; the margin leaves the member time to stop its grains
// before they may be activated elsewhere.
func (r *runner) fenceAfter() time.Duration {
	margin := min(r.opts.ttl/4, (r.opts.ttl-r.opts.interval)/2)
	return r.opts.ttl - margin
}

// deafAfter is how long a member may go without one of its heartbeats
// coming back before it stops expiring the others: if it cannot hear
// itself it cannot hear them either, and their silence proves nothing.
func (r *runner) deafAfter() time.Duration {
	return max(2*r.opts.interval, r.opts.ttl/4)
}

// subscribe subscribes to the cluster's membership subjects and publishes
// the hello and, for a member, the first heartbeat. The subscription goes
// out before the hello on the same connection, so no answer is missed.
func (r *runner) subscribe() error {
	sub, err := r.nc.ChanSubscribe(r.subjects.all, r.msgs)
	if err != nil {
		return fmt.Errorf("natscluster: subscribe %s: %w", r.subjects.all, err)
	}
	r.sub = sub
	if err := r.nc.Publish(r.subjects.hello, encode(hello{Version: wireVersion, ID: r.rc.id})); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("natscluster: publish hello: %w", err)
	}
	r.sendHeartbeat(time.Now())
	return nil
}

// Events the loop reacts to, after select has picked one.
const (
	evMessage = iota
	evTick
	evExpire
	evJoin
)

// loop handles messages and timers until stop is closed or the actor system
// has stopped. ready is closed after the first topology is published, at the
// end of the join window.
func (r *runner) loop(stop <-chan struct{}, ready chan<- struct{}) {
	tick := time.NewTicker(r.opts.interval)
	defer tick.Stop()
	join := time.NewTimer(r.opts.joinWindow)
	defer join.Stop()
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()

	joined, changed := false, false
	last := time.Now()
	for {
		var (
			ev  int
			msg *nats.Msg
		)
		select {
		case <-stop:
			return
		case msg = <-r.msgs:
			ev = evMessage
		case <-tick.C:
			ev = evTick
		case <-expiry.C:
			ev = evExpire
		case <-join.C:
			ev = evJoin
		}
		now := time.Now()
		r.checkStall(now.Sub(last))
		last = now

		switch ev {
		case evMessage:
			changed = r.handle(msg, now) || changed
		case evTick:
			if r.rc.stopped != nil && r.rc.stopped() {
				r.log.Info("actor system stopped; leaving")
				return
			}
			changed = r.drain(now) || changed
			changed = r.check(now) || changed
			r.sendHeartbeat(now)
			if r.fenced && joined && !changed && r.rc.republish != nil {
				// Another member that has not expired this one yet may
				// have asked it to activate a grain (protoactor's
				// placement actor activates whatever it is asked);
				// the topology event makes it stop that grain again.
				r.rc.republish(r.table.fenced())
			}
		case evExpire:
			changed = r.drain(now) || changed
			changed = r.check(now) || changed
		case evJoin:
			joined, changed = true, true
		}
		if joined && changed {
			changed = false
			if r.fenced {
				r.rc.publish(r.table.fenced())
			} else {
				r.rc.publish(r.table.members())
			}
			if ready != nil {
				close(ready)
				ready = nil
			}
		}
		if next, ok := r.nextCheck(now); ok {
			expiry.Reset(next.Sub(now))
		} else {
			expiry.Stop()
		}
	}
}

// drain handles the messages already queued, which were received in time,
// before a decision that depends on what has been heard.
func (r *runner) drain(now time.Time) bool {
	changed := false
	for range len(r.msgs) {
		changed = r.handle(<-r.msgs, now) || changed
	}
	return changed
}

// check fences the member if its heartbeats stopped coming back, and
// expires the members whose TTL has passed, unless this member could not
// hear them. It reports whether the topology changed.
func (r *runner) check(now time.Time) bool {
	changed := false
	if r.self != nil && r.echo && !r.fenced && now.Sub(r.confirmed) >= r.fenceAfter() {
		r.fence(now, "own heartbeats stopped coming back")
		changed = true
	}
	if r.fenced || !r.hearing(now) {
		return changed
	}
	for _, id := range r.table.expire(now) {
		r.log.Info("member expired", slog.String("id", id))
		changed = true
	}
	return changed
}

// hearing reports whether the member's own heartbeats came back recently,
// so that the others' silence means something. Clients send none and
// members on a NoEcho connection cannot tell: both always trust silence.
func (r *runner) hearing(now time.Time) bool {
	return r.self == nil || !r.echo || now.Sub(r.echoAt) <= r.deafAfter()
}

// nextCheck returns when check has something to do next: the earliest
// expiry or the fencing deadline. Checks the loop cannot act on yet (a
// fenced or deaf member) wait for the ticker instead.
func (r *runner) nextCheck(now time.Time) (time.Time, bool) {
	var next time.Time
	if d, ok := r.table.nextDeadline(); ok && !r.fenced && (d.After(now) || r.hearing(now)) {
		next = d
	}
	if r.self != nil && r.echo && !r.fenced {
		if f := r.confirmed.Add(r.fenceAfter()); next.IsZero() || f.Before(next) {
			next = f
		}
	}
	return next, !next.IsZero()
}

// fence takes the member out of its own topology because the others may be
// expiring it: none of its recent heartbeats came back, so they may not
// have reached the others either. Until one comes back, the member hosts
// no grains and asks no other member to activate one (see table.fenced),
// and it expires no one, since it hears no one. Its heartbeats carry its
// next incarnation's member ID from now on: protoactor-go never takes
// back a member ID that left a topology.
func (r *runner) fence(now time.Time, why string) {
	r.fenced, r.fencedAt = true, now
	r.incarnation++
	next := *r.self
	next.ID = memberID(next.Instance, r.incarnation)
	r.log.Warn(why+"; hosting no grains until an own heartbeat comes back",
		slog.Duration("last_heard_since", now.Sub(r.confirmed)), slog.String("next_id", next.ID))
	r.self = &next
	r.table.setSelf(&next)
	if r.rc.announce != nil {
		r.rc.announce(next.ID)
	}
}

// ownHeartbeat handles one of the member's own heartbeats coming back.
func (r *runner) ownHeartbeat(hb heartbeat, now time.Time) bool {
	if gap := now.Sub(r.echoAt); gap > r.deafAfter() {
		// Others' heartbeats could not reach this member either, and
		// their expiry waited meanwhile (see check).
		r.table.postpone(gap)
		r.log.Warn("own heartbeats came back late; postponing expiry", slog.Duration("gap", gap))
	}
	r.echoAt = now
	b := r.sent[hb.Seq%sentRing]
	if hb.Seq == 0 || b.seq != hb.Seq {
		return false
	}
	if b.at.After(r.confirmed) {
		r.confirmed = b.at
	}
	if !r.fenced || hb.ID != r.self.ID {
		return false
	}
	// A heartbeat of the new incarnation went through: the others are
	// seeing the member again under its new ID.
	r.fenced = false
	r.log.Info("rejoined under a new member ID", slog.String("id", r.self.ID), slog.Duration("fenced", now.Sub(r.fencedAt)))
	// Everyone answers a hello at once, so the member's view is fresh.
	if err := r.nc.Publish(r.subjects.hello, encode(hello{Version: wireVersion, ID: r.rc.id})); err != nil {
		r.log.Debug("hello not published", slog.Any("error", err))
	}
	return true
}

// checkStall postpones every expiry by the time the loop itself could not
// run. The ticker wakes the loop every interval, so a much longer gap means
// this process was paused (CPU starvation, a long GC pause, a suspended VM)
// or the loop was blocked handing a topology to protoactor. Heartbeats
// could not be received meanwhile, and expiring their senders now would
// block them in protoactor for good. Stalls up to a quarter of the TTL (or
// one interval, if longer) are ignored: they cannot eat the TTL's margin.
func (r *runner) checkStall(gap time.Duration) {
	stall := gap - r.opts.interval
	if stall <= max(r.opts.interval, r.opts.ttl/4) {
		return
	}
	r.table.postpone(stall)
	r.log.Warn("provider stalled; postponing expiry", slog.Duration("stall", stall))
}

// handle applies one membership message and reports whether the topology
// changed.
func (r *runner) handle(m *nats.Msg, now time.Time) bool {
	switch m.Subject {
	case r.subjects.heartbeat:
		hb, err := decodeHeartbeat(m.Data)
		if err != nil {
			r.log.Debug("dropped heartbeat", slog.Any("error", err))
			return false
		}
		if r.table.isOwn(hb) {
			return r.ownHeartbeat(hb, now)
		}
		if r.table.wasExpired(hb.ID) {
			// Alive after all: tell it, so it comes back under a new
			// ID. (A late heartbeat of a member that has meanwhile
			// fenced itself names an ID it no longer uses.)
			if err := r.nc.Publish(r.subjects.expired, encode(expired{Version: wireVersion, ID: hb.ID})); err != nil {
				r.log.Debug("expiry notice not published", slog.Any("error", err))
			}
			return false
		}
		if r.table.heartbeat(hb, now) {
			r.log.Info("member joined or changed", slog.String("id", hb.ID), slog.String("host", hb.Host), slog.Int("port", int(hb.Port)))
			return true
		}
	case r.subjects.leave:
		l, err := decodeLeave(m.Data)
		if err != nil {
			r.log.Debug("dropped leave", slog.Any("error", err))
			return false
		}
		if r.table.leave(l.ID, now) {
			r.log.Info("member left", slog.String("id", l.ID))
			return true
		}
	case r.subjects.hello:
		h, err := decodeLeave(m.Data)
		if err != nil {
			r.log.Debug("dropped hello", slog.Any("error", err))
			return false
		}
		if h.ID != r.rc.id {
			r.sendHeartbeat(now)
		}
	case r.subjects.expired:
		e, err := decodeLeave(m.Data)
		if err != nil {
			r.log.Debug("dropped expiry notice", slog.Any("error", err))
			return false
		}
		if r.self != nil && !r.fenced && e.ID == r.self.ID {
			// Another member expired this one while both could hear
			// themselves: a partition inside NATS. It blocks this ID
			// for good, so fence and rejoin under the next one.
			r.fence(now, "another member expired this one (a partition inside NATS?)")
			return true
		}
	}
	return false
}

// errNotConnected reports a heartbeat not sent while NATS reconnects: the
// client would buffer it and deliver it late, as if it were fresh.
var errNotConnected = errors.New("not connected to NATS")

// sendHeartbeat publishes the member's heartbeat; clients send none.
func (r *runner) sendHeartbeat(now time.Time) {
	if r.self == nil {
		return
	}
	var err error
	if r.nc.IsConnected() {
		r.seq++
		hb := *r.self
		hb.Seq = r.seq
		if err = r.nc.Publish(r.subjects.heartbeat, encode(hb)); err == nil {
			r.sent[r.seq%sentRing] = sentBeat{seq: r.seq, at: now}
		}
	} else {
		err = errNotConnected
	}
	switch {
	case err != nil && !r.publishErr:
		r.log.Warn("heartbeat not published", slog.Any("error", err))
	case err == nil && r.publishErr:
		r.log.Info("heartbeat published again")
	}
	r.publishErr = err != nil
}

// teardown unsubscribes and, for a member, publishes and flushes a leave.
func (r *runner) teardown() error {
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.log.Debug("unsubscribe failed", slog.Any("error", err))
	}
	if r.rc.self == nil {
		return nil
	}
	data := encode(leave{Version: wireVersion, ID: r.self.ID})
	if err := r.nc.Publish(r.subjects.leave, data); err != nil {
		r.log.Warn("leave not published", slog.Any("error", err))
		return fmt.Errorf("natscluster: publish leave: %w", err)
	}
	// After one TTL the others have expired this member anyway.
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.ttl)
	defer cancel()
	if err := r.nc.FlushWithContext(ctx); err != nil {
		r.log.Warn("leave not flushed", slog.Any("error", err))
		return fmt.Errorf("natscluster: flush leave: %w", err)
	}
	r.log.Info("left cluster")
	return nil
}
