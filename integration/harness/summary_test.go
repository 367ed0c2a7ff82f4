package harness

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestSummaryPrintsAlignedTable(t *testing.T) {
	s := NewSummary()
	var empty bytes.Buffer
	if err := s.Print(&empty); err != nil || empty.Len() != 0 {
		t.Fatalf("empty summary printed %q, %v", empty.String(), err)
	}
	s.Add(SummaryRow{Scenario: "kill acceptor", OK: 1200, Failed: 3, Indeterminate: 1,
		LongestUnavailable: 1500 * time.Millisecond, Linearizable: "Ok"})
	s.Add(SummaryRow{Scenario: "partition", OK: 7, LongestUnavailable: 20 * time.Millisecond,
		Linearizable: "Illegal", Violations: 2, LostWrites: 1})
	var b bytes.Buffer
	if err := s.Print(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("table has %d lines, want 3:\n%s", len(lines), b.String())
	}
	// Right-aligned columns end at the same offsets on every line.
	for _, col := range []string{"ok", "lost writes"} {
		end := strings.Index(lines[0], col) + len(col)
		for _, l := range lines[1:] {
			if end > len(l) || l[end-1] == ' ' || (end < len(l) && l[end] != ' ') {
				t.Errorf("column %q does not end at offset %d in %q", col, end, l)
			}
		}
	}
	for _, want := range []string{"kill acceptor", "1.50s", "20ms", "Illegal"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
