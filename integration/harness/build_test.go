package harness

import "testing"

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[int]bool)
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("FreePorts(20) = %v: bad or repeated port %d", ports, p)
		}
		seen[p] = true
	}
}
