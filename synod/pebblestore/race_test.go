//go:build race

package pebblestore

// raceEnabled shortens the randomized crash tests under the race detector,
// which slows Pebble down about tenfold.
const raceEnabled = true
