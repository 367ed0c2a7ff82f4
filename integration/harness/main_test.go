package harness

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/procs"
)

// helperEnv makes the test binary act as a helper process instead of running
// tests, so process tests need nothing but the test binary itself.
const helperEnv = "HARNESS_TEST_HELPER"

var seedFlag = flag.Int64("seed", 0, "seed for randomized tests (0: derive from the clock)")

// suite is this package's build cache and summary, shared by its tests.
var suite = NewSuite()

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(suite.Run(m))
}

// runHelper implements the helper processes:
//
//   - "serve": print "ready pid=N", exit 0 on SIGTERM after printing "got
//     SIGTERM".
//   - "stubborn": like serve but ignore SIGTERM.
//   - "exit": print "bye" and exit with status 3.
//   - "spawn-group": start a "stubborn" child in the same process group,
//     print "child pid=N", then wait forever.
//   - "spawn-orphan": start a "stubborn" child in its own process group with
//     the harness's SysProcAttr (Pdeathsig on Linux), print "child pid=N",
//     then wait forever.
func runHelper(mode string) int {
	switch mode {
	case "serve", "stubborn":
		sigs := make(chan os.Signal, 1)
		if mode == "serve" {
			signal.Notify(sigs, syscall.SIGTERM)
		} else {
			signal.Ignore(syscall.SIGTERM)
		}
		fmt.Printf("ready pid=%d\n", os.Getpid())
		<-sigs
		fmt.Println("got SIGTERM")
		return 0
	case "exit":
		fmt.Println("bye")
		return 3
	case "spawn-group", "spawn-orphan":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=stubborn")
		if mode == "spawn-orphan" {
			cmd.SysProcAttr = procs.SysProcAttr()
		}
		if err := cmd.Start(); err != nil {
			fmt.Println("start child:", err)
			return 1
		}
		fmt.Printf("child pid=%d\n", cmd.Process.Pid)
		select {}
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		return 2
	}
}

// startHelper starts the test binary as a helper process in the given mode.
func startHelper(t *testing.T, mode string) *Proc {
	t.Helper()
	p, err := StartProc(t, ProcSpec{
		Name: "helper-" + mode,
		Path: os.Args[0],
		Env:  []string{helperEnv + "=" + mode},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testSeed returns the -seed flag or a clock-derived seed, and logs it.
func testSeed(t *testing.T) int64 {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return seed
}

// natsServerBinary returns the cached nats-server build, skipping the test
// in -short mode.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts nats-server processes; skipped with -short")
	}
	return suite.NATSServer(t)
}
