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

	heartbeat  []byte // encoded rc.self
	publishErr bool   // the last heartbeat failed, to log transitions only
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
	}
	if rc.self != nil {
		r.heartbeat = encode(*rc.self)
	}
	return r
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
	r.sendHeartbeat()
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
			r.sendHeartbeat()
		case evExpire:
			// Heartbeats already queued were received in time.
			for range len(r.msgs) {
				changed = r.handle(<-r.msgs, now) || changed
			}
			for _, id := range r.table.expire(now) {
				r.log.Info("member expired", slog.String("id", id))
				changed = true
			}
		case evJoin:
			joined, changed = true, true
		}
		if joined && changed {
			changed = false
			r.rc.publish(r.table.members())
			if ready != nil {
				close(ready)
				ready = nil
			}
		}
		if next, ok := r.table.nextDeadline(); ok {
			expiry.Reset(time.Until(next))
		} else {
			expiry.Stop()
		}
	}
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
			r.sendHeartbeat()
		}
	}
	return false
}

// sendHeartbeat publishes the member's heartbeat; clients send none.
func (r *runner) sendHeartbeat() {
	if r.heartbeat == nil {
		return
	}
	err := r.nc.Publish(r.subjects.heartbeat, r.heartbeat)
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
	data := encode(leave{Version: wireVersion, ID: r.rc.self.ID})
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
