package procs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Env is what starting processes needs from its caller: somewhere to put
// files, cleanups to run at the end, and a place to report. A *testing.T or
// *testing.B is an Env (the integration harness passes its tests); commands
// use [NewCommandEnv].
type Env interface {
	// Helper marks the calling function as a helper (a no-op outside tests).
	Helper()
	// Cleanup registers f to run when the Env ends, in last-in first-out
	// order.
	Cleanup(f func())
	// TempDir returns a new directory removed when the Env ends.
	TempDir() string
	// Failed reports whether the caller failed; cleanups then log the last
	// output of the processes they kill.
	Failed() bool
	// Logf reports progress or a process's output.
	Logf(format string, args ...any)
}

// CommandEnv is an [Env] for a command rather than a test: its temporary
// directories live under one root directory, and Close runs the cleanups
// (killing every process started with it) and removes the root.
type CommandEnv struct {
	root string
	log  io.Writer

	mu       sync.Mutex
	cleanups []func()
	dirs     int
	failed   bool
}

var _ Env = (*CommandEnv)(nil)

// NewCommandEnv returns an Env whose temporary directories go under a new
// directory in os.TempDir() and whose reports go to log (nil: discarded).
func NewCommandEnv(log io.Writer) (*CommandEnv, error) {
	root, err := os.MkdirTemp("", "protosynod-procs-")
	if err != nil {
		return nil, fmt.Errorf("procs: %w", err)
	}
	if log == nil {
		log = io.Discard
	}
	return &CommandEnv{root: root, log: log}, nil
}

// Root returns the directory holding the Env's temporary directories.
func (e *CommandEnv) Root() string { return e.root }

// Helper implements Env; it does nothing.
func (e *CommandEnv) Helper() {}

// Cleanup implements Env.
func (e *CommandEnv) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

// TempDir implements Env. It panics if it cannot create the directory, as
// testing.T's TempDir fails the test.
func (e *CommandEnv) TempDir() string {
	e.mu.Lock()
	e.dirs++
	dir := filepath.Join(e.root, fmt.Sprintf("%03d", e.dirs))
	e.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(fmt.Sprintf("procs: TempDir: %v", err))
	}
	return dir
}

// Fail marks the Env failed: Close then reports the last output of each
// process it kills.
func (e *CommandEnv) Fail() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failed = true
}

// Failed implements Env.
func (e *CommandEnv) Failed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failed
}

// Logf implements Env.
func (e *CommandEnv) Logf(format string, args ...any) {
	fmt.Fprintf(e.log, format+"\n", args...)
}

// Close runs the cleanups, last registered first, and removes the root
// directory.
func (e *CommandEnv) Close() error {
	e.mu.Lock()
	cleanups := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if err := os.RemoveAll(e.root); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("procs: %w", err)
	}
	return nil
}
