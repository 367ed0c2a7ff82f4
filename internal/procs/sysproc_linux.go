//go:build linux

package procs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SysProcAttr puts a child in its own process group, so signals reach its
// children too, and asks the kernel to SIGKILL it when the test binary dies.
//
// Pdeathsig fires when the OS thread that started the child exits, not only
// the process. The Go runtime does not retire threads except those of
// goroutines that exit while locked with runtime.LockOSThread, so processes
// must not be started from such goroutines.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// stopTimeout bounds how long Stop waits for every thread to stop.
const stopTimeout = 2 * time.Second

// waitStopped waits until every thread of pid is stopped (state T or t in
// /proc). SIGSTOP takes effect asynchronously: a thread running on another
// CPU may still answer a request in the moment after kill returns. The kernel
// offers no event for this, so it polls every millisecond.
func waitStopped(pid int) error {
	deadline := time.Now().Add(stopTimeout)
	for {
		stopped, err := allThreadsStopped(pid)
		if err != nil || stopped {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("procs: pid %d not stopped after %v", pid, stopTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func allThreadsStopped(pid int) (bool, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		return false, err
	}
	if len(stats) == 0 {
		// Gone (or no procfs): nothing left to wait for.
		return true, nil
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread exited
		}
		// The state letter follows the parenthesized command name.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		if state := s[i+2]; state != 'T' && state != 't' && state != 'Z' && state != 'X' {
			return false, nil
		}
	}
	return true, nil
}
