package synod

import "time"

// Queued returns how many calls of key wait behind its running round in c,
// for tests that must know a batch has formed before they let it run.
func Queued(c *Client, key string) int {
	c.keys.mu.Lock()
	defer c.keys.mu.Unlock()
	if q := c.keys.m[key]; q != nil {
		return len(q.waiting)
	}
	return 0
}

// WithClock sets the clock of a Client's suspicions (thrifty phases).
func WithClock(now func() time.Time) Option { return func(o *clientOptions) { o.now = now } }

// WithSuspectFor sets how long a Client avoids a suspected acceptor.
func WithSuspectFor(d time.Duration) Option { return func(o *clientOptions) { o.suspectFor = d } }

// HedgeDelay returns the hedge delay c's next thrifty phase would wait, and
// Observe feeds it a phase's latency, for tests of the estimate.
func HedgeDelay(c *Client) time.Duration { return c.thr.delay() }

// Observe feeds c's hedge delay estimate the latency of a phase.
func Observe(c *Client, d time.Duration) { c.thr.observe(d) }

// Subset returns the acceptors of cfg that c's next thrifty accept would go
// to first.
func Subset(c *Client, cfg Config) []string {
	first, _ := c.thr.split(cfg, c.ID(), c.tiers(), true)
	return first
}
