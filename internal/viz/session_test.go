package viz

import (
	"strings"
	"testing"
)

// TestScenarios runs every built-in scenario's script to its end and checks
// the outcome its description documents.
func TestScenarios(t *testing.T) {
	for _, sc := range Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			s, err := sc.Load(1)
			if err != nil {
				t.Fatal(err)
			}
			for n := 0; len(s.Script()) > 0; n++ {
				if _, err := s.Step(); err != nil {
					t.Fatalf("step %d: %v", n+1, err)
				}
			}
			if !s.Quiet() {
				t.Errorf("not quiet after the script: %d messages in flight", len(s.InFlight()))
			}
			if err := sc.Check(s); err != nil {
				t.Errorf("outcome: %v\nevents:\n%s", err, eventLog(s))
			}
		})
	}
}

func eventLog(s *Session) string {
	var b strings.Builder
	for _, e := range s.Events() {
		for _, l := range e.Lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
