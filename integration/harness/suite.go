package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// buildTimeout bounds one build started by a Suite.
const buildTimeout = 5 * time.Minute

// Suite is what a test package shares across its tests: a build cache and a
// summary table. Keep it in a package-level variable of the test package and
// run the tests through [Suite.Run] from TestMain:
//
//	var suite = harness.NewSuite()
//
//	func TestMain(m *testing.M) { os.Exit(suite.Run(m)) }
type Suite struct {
	// Binaries caches the binaries built during the run.
	Binaries *Binaries
	// Summary collects a row per checked scenario; Run prints it.
	Summary *Summary
	// Out receives the summary table (default os.Stdout).
	Out io.Writer
}

// NewSuite returns a suite with an empty build cache and summary.
func NewSuite() *Suite {
	return &Suite{Binaries: NewBinaries(), Summary: NewSummary(), Out: os.Stdout}
}

// Run runs the tests, prints the summary table (if any check added rows) to
// Out and, when $PROTOSYNOD_ARTIFACTS is set, to summary.txt there, removes
// the built binaries and returns the exit code for os.Exit. Note that go test
// shows a passing package's output only with -v or when given a single
// package in the current directory.
func (s *Suite) Run(m *testing.M) int {
	code := m.Run()
	if len(s.Summary.Rows()) > 0 {
		fmt.Fprintln(s.Out)
		if err := s.Summary.Print(s.Out); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		if dir := os.Getenv(ArtifactsEnv); dir != "" {
			if err := s.writeSummary(filepath.Join(dir, "summary.txt")); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}
	if err := s.Binaries.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

func (s *Suite) writeSummary(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("harness: write summary: %w", err)
	}
	return writeFile(path, s.Summary.Print)
}

// NATSServer returns the path of the pinned nats-server binary, building it
// on first use; it fails the test if the build fails.
func (s *Suite) NATSServer(t testing.TB) string {
	t.Helper()
	return s.Binary(t, NATSServerPackage)
}

// Binary returns the path of the binary built from pkg (for example
// "./cmd/synod-acceptor", relative to the module root), building it on first
// use; it fails the test if the build fails.
func (s *Suite) Binary(t testing.TB, pkg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	path, err := s.Binaries.Go(ctx, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return path
}
