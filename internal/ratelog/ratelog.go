// Package ratelog logs repeated events at most once per cause per interval,
// with a count of the occurrences it held back, so that a failure repeated
// thousands of times a second (a full disk, say) costs one line per second.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Logger rate-limits log lines by cause. It is safe for concurrent use.
//
// The first event of a cause is logged at once. Further events of that cause
// within the interval are only counted; the first event after the interval is
// logged with "repeated" set to how many were held back (and "over", the time
// since the last line of that cause). Flush logs the counts still held back.
type Logger struct {
	l        *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	causes map[string]*cause
}

type cause struct {
	last    time.Time // when the last line of the cause was logged
	held    int       // events since then that were not logged
	level   slog.Level
	msg     string
	args    []any
	logging bool
}

// maxCauses bounds the causes remembered; beyond it, every cause is reset.
const maxCauses = 1024

// New returns a Logger writing to l at most one line per cause per interval.
func New(l *slog.Logger, interval time.Duration) *Logger {
	return &Logger{l: l, interval: interval, now: time.Now, causes: make(map[string]*cause)}
}

// WithClock sets the clock (for tests) and returns r.
func (r *Logger) WithClock(now func() time.Time) *Logger {
	r.now = now
	return r
}

// Log logs msg with args at level unless a line of the same cause was logged
// less than the interval ago; then it only counts the event. It reports
// whether it logged.
func (r *Logger) Log(level slog.Level, key, msg string, args ...any) bool {
	if !r.l.Enabled(context.Background(), level) {
		return false
	}
	now := r.now()
	r.mu.Lock()
	c := r.causes[key]
	if c == nil {
		if len(r.causes) >= maxCauses {
			clear(r.causes)
		}
		c = &cause{}
		r.causes[key] = c
	} else if now.Sub(c.last) < r.interval {
		c.held++
		c.level, c.msg, c.args = level, msg, args
		r.mu.Unlock()
		return false
	}
	held, since := c.held, now.Sub(c.last)
	first := c.last.IsZero()
	c.last, c.held = now, 0
	r.mu.Unlock()
	if !first && held > 0 {
		args = append(args[:len(args):len(args)], "repeated", held, "over", since.Round(time.Millisecond))
	}
	r.l.Log(context.Background(), level, msg, args...)
	return true
}

// Flush logs, for every cause with events held back, its last event with the
// count, and forgets them.
func (r *Logger) Flush() {
	r.mu.Lock()
	var lines []cause
	now := r.now()
	for k, c := range r.causes {
		if c.held > 0 {
			c.args = append(c.args[:len(c.args):len(c.args)], "repeated", c.held, "over", now.Sub(c.last).Round(time.Millisecond))
			lines = append(lines, *c)
		}
		delete(r.causes, k)
	}
	r.mu.Unlock()
	for _, c := range lines {
		r.l.Log(context.Background(), c.level, c.msg, c.args...)
	}
}
