package harness

import (
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"
)

// SummaryRow is one scenario's line in a [Summary].
type SummaryRow struct {
	Scenario string
	// OK, Failed and Indeterminate count operations by outcome.
	OK, Failed, Indeterminate int
	// LongestUnavailable is the longest stretch without a successful
	// operation.
	LongestUnavailable time.Duration
	// Linearizable is porcupine's verdict: "Ok", "Illegal" or "Unknown".
	Linearizable string
	// Violations counts keys whose history is not linearizable.
	Violations int
	// LostWrites counts acknowledged writes missing from final reads.
	LostWrites int
}

// Summary collects one row per scenario and prints them as an aligned table.
// It is safe for concurrent use. Create one per test package (see [Suite]) and
// pass it to checks with [WithSummary].
type Summary struct {
	mu   sync.Mutex
	rows []SummaryRow
}

// NewSummary returns an empty summary.
func NewSummary() *Summary { return &Summary{} }

// Add appends a row.
func (s *Summary) Add(row SummaryRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, row)
}

// Rows returns a copy of the rows in the order they were added.
func (s *Summary) Rows() []SummaryRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SummaryRow(nil), s.rows...)
}

// Print writes the rows as an aligned table with a header line. It writes
// nothing if there are no rows.
func (s *Summary) Print(w io.Writer) error {
	rows := s.Rows()
	if len(rows) == 0 {
		return nil
	}
	// Numbers align right; the scenario column is padded to one width so
	// it reads left-aligned.
	width := len("scenario")
	for _, r := range rows {
		width = max(width, len(r.Scenario))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tok\tfailed\tindeterminate\tlongest unavailable\tlinearizable\tviolations\tlost writes\t\n", width, "scenario")
	for _, r := range rows {
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t\n", width, r.Scenario, r.OK, r.Failed,
			r.Indeterminate, formatDuration(r.LongestUnavailable), r.Linearizable, r.Violations, r.LostWrites)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("harness: print summary: %w", err)
	}
	return nil
}
