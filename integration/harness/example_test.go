package harness_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/protosynod/protosynod/integration/harness"
)

// A worker records each operation around the real call; a checker runs at
// the end. Here the "system" answers a stale read, which the checker rejects.
func ExampleRecorder() {
	rec := harness.NewRecorder()

	rec.Call(0, harness.Write("x", "a")).Return(harness.Output{})
	rec.Call(0, harness.CAS("x", "a", "b")).Return(harness.Output{OK: true})
	// A timeout after the request was sent: it may or may not apply.
	rec.Call(1, harness.Write("x", "c")).Indeterminate(errors.New("timeout"))
	// The final read, after the workload: "a" misses the acknowledged CAS.
	rec.Call(2, harness.Read("x")).Return(harness.Output{Value: "a"})

	res := rec.Analyze(10 * time.Second)
	fmt.Println("linearizable:", res.Linearizable)
	fmt.Println("ok/failed/indeterminate:", res.OK, res.Failed, res.Indeterminate)
	fmt.Println("lost:", len(res.Lost), res.Lost[0].Op.Input)
	fmt.Println(errors.Is(res.Err(), harness.ErrNotLinearizable), errors.Is(res.Err(), harness.ErrLostWrites))
	// Output:
	// linearizable: Illegal
	// ok/failed/indeterminate: 3 0 1
	// lost: 1 cas(x, "a"→"b")
	// true true
}
