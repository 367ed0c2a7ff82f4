package scenario

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// narrator prints the scenario: one line per step, prefixed with the time
// since the start, and aligned tables.
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

// say prints one line.
func (n *narrator) say(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, "[%6.2fs] %s\n", time.Since(n.start).Seconds(), fmt.Sprintf(format, args...))
}

// heading prints a blank line and a step title.
func (n *narrator) heading(format string, args ...any) {
	n.mu.Lock()
	fmt.Fprintln(n.w)
	n.mu.Unlock()
	n.say("== "+format, args...)
}

// table prints rows under header, aligned, indented past the time column.
func (n *narrator) table(header []string, rows [][]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	tw := tabwriter.NewWriter(n.w, 0, 0, 2, ' ', 0)
	line := func(cells []string) { fmt.Fprintf(tw, "           %s\t\n", strings.Join(cells, "\t")) }
	line(header)
	dashes := make([]string, len(header))
	for i, h := range header {
		dashes[i] = strings.Repeat("-", len(h))
	}
	line(dashes)
	for _, r := range rows {
		line(r)
	}
	_ = tw.Flush()
}

// ms formats a duration in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
