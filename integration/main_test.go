package integration

import (
	"hash/fnv"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/protosynod/protosynod/integration/harness"
)

// Environment variables that tune the suite.
const (
	seedEnv = "PROTOSYNOD_SEED"
	soakEnv = "PROTOSYNOD_SOAK"
)

// suite is the package's build cache and summary table.
var suite = harness.NewSuite()

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	// toxiproxy's bandwidth toxic logs trace lines through zerolog's global
	// logger when it is removed; this test binary does not want them.
	zerolog.SetGlobalLevel(zerolog.InfoLevel)
	os.Exit(suite.Run(m))
}

// soak reports whether PROTOSYNOD_SOAK asks for a long run.
func soak() bool {
	v := os.Getenv(soakEnv)
	return v != "" && v != "0" && v != "false"
}

// baseSeed is PROTOSYNOD_SEED, or the clock.
func baseSeed(t testing.TB) int64 {
	if v := os.Getenv(seedEnv); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
		return s
	}
	return time.Now().UnixNano()
}

// scenarioSeed derives the seed of one scenario from the base seed and its
// name and logs it, so a failure can be replayed with PROTOSYNOD_SEED.
func scenarioSeed(t testing.TB, base int64) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.Name()))
	seed := base ^ int64(h.Sum64()>>1)
	t.Logf("seed %d (replay the run with %s=%d)", seed, seedEnv, base)
	return seed
}

// skipShort skips tests that start processes under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts nats-server and acceptor processes")
	}
}
