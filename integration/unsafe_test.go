package integration

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestCheckerDetectsLostWrites shows that the suite can fail: it runs the
// kill-all scenario with acceptors started with synod-acceptor's test-only
// -unsafe-no-fsync flag and requires the checker to report lost
// acknowledged writes or a linearizability violation. Under load, writes
// after the restart usually overwrite the lost ones, so the loss shows as a
// violation (a read or CAS that went back in time); with the load stopped
// before the kill (quiesced), the final reads must show lost acknowledged
// writes themselves.
//
// What -unsafe-no-fsync does (cmd/synod-acceptor/unsafe.go): every fsync is
// skipped AND Pebble's write-ahead log is held in the acceptor's own memory
// (up to 4 MiB, or until the file is closed) instead of being written to the
// operating system. Skipping fsync alone would not do: the kernel keeps
// unsynced writes in its page cache across the death of a process, so
// SIGKILL loses nothing; only a power failure would. Holding the log in
// process memory makes SIGKILL lose what the acceptor acknowledged, as a
// power failure would without fsync.
func TestCheckerDetectsLostWrites(t *testing.T) {
	skipShort(t)
	base := baseSeed(t)
	attempts := 3
	if soak() {
		attempts = 8
	}
	sc := scenario{
		name: "kill-all-3-unsafe-no-fsync",
		env: envConfig{
			natsServers: 3, acceptors: 3,
			acceptorArgs: []string{"-unsafe-no-fsync"},
		},
		fault:  killAll(),
		hold:   time.Second,
		unsafe: true,
	}
	for _, quiesce := range []bool{false, true} {
		sc.quiesce = quiesce
		name := "under-load"
		if quiesce {
			name = "quiesced"
		}
		t.Run(name, func(t *testing.T) { detectLoss(t, sc, base, attempts) })
	}
}

// detectLoss runs sc up to attempts times, until the checker reports a loss.
func detectLoss(t *testing.T, sc scenario, base int64, attempts int) {
	detected := 0
	for i := range attempts {
		ok := t.Run("attempt", func(t *testing.T) {
			res := runScenario(t, sc, scenarioSeed(t, base+int64(i)))
			lost := len(res.Lost) > 0
			if lost || (!sc.quiesce && res.Linearizable == porcupine.Illegal) {
				detected++
				t.Logf("detected as expected: %d lost acknowledged writes (e.g. %v), linearizable: %v",
					len(res.Lost), firstLost(res.Lost), res.Linearizable)
			}
		})
		if !ok {
			t.FailNow()
		}
		if detected > 0 && !soak() {
			break
		}
	}
	if detected == 0 {
		t.Fatalf("in %d runs with -unsafe-no-fsync the checker detected no lost write and no violation: the suite cannot fail", attempts)
	}
}

func firstLost[T any](s []T) any {
	if len(s) == 0 {
		return nil
	}
	return s[0]
}
