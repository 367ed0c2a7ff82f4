//go:build race

package synodtest_test

// raceEnabled reports a -race build, which runs fewer seeds.
const raceEnabled = true
