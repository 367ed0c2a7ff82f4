//go:build linux

package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p := startHelper(t, "serve")
	if err := p.WaitOutput(ctx, "ready pid="); err != nil {
		t.Fatal(err)
	}
	firstPid := p.Pid()
	if !p.Running() {
		t.Fatal("Running() = false after start")
	}

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if !p.Stopped() {
		t.Error("Stopped() = false after Stop")
	}
	waitProcState(t, ctx, firstPid, 'T')
	if err := p.Cont(); err != nil {
		t.Fatal(err)
	}
	if p.Stopped() {
		t.Error("Stopped() = true after Cont")
	}

	// Terminate a stopped process: Terminate resumes it so it can exit.
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(ctx); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Errorf("Wait after a clean SIGTERM exit = %v, want nil", err)
	}
	if !strings.Contains(p.Tail(), "got SIGTERM") {
		t.Errorf("tail %q lacks the SIGTERM line", p.Tail())
	}
	if p.Running() {
		t.Error("Running() = true after exit")
	}
	if err := p.Stop(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Stop after exit = %v, want ErrNotRunning", err)
	}

	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput(ctx, "ready pid="); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == firstPid {
		t.Errorf("Restart kept pid %d", firstPid)
	}
	if strings.Contains(p.Tail(), "got SIGTERM") {
		t.Errorf("tail after Restart still holds the last run: %q", p.Tail())
	}

	// Restart of a running process is a crash and restart.
	secondPid := p.Pid()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput(ctx, "ready pid="); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == secondPid {
		t.Errorf("Restart of a running process kept pid %d", secondPid)
	}

	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if err := p.Wait(ctx); !errors.As(err, &exitErr) ||
		exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait after Kill = %v, want killed by SIGKILL", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill = %v, want nil", err)
	}

	log, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(log), "=== procs: start #"); got != 3 {
		t.Errorf("log holds %d run headers, want 3:\n%s", got, log)
	}
	if got := strings.Count(string(log), "ready pid="); got != 3 {
		t.Errorf("log holds %d ready lines, want 3:\n%s", got, log)
	}
}

func TestProcTerminateEscalatesToKill(t *testing.T) {
	p := startHelper(t, "stubborn")
	if err := p.WaitOutput(t.Context(), "ready"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := p.Terminate(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Terminate of a process ignoring SIGTERM = %v, want DeadlineExceeded", err)
	}
	if p.Running() {
		t.Error("process still running after Terminate gave up")
	}
}

func TestProcWaitOutputFailsWhenProcessExits(t *testing.T) {
	p := startHelper(t, "exit")
	err := p.WaitOutput(t.Context(), "never printed")
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("WaitOutput = %v, want ErrNotRunning", err)
	}
	if !strings.Contains(err.Error(), "bye") {
		t.Errorf("error %q does not quote the output", err)
	}
	var exitErr *exec.ExitError
	if err := p.Wait(t.Context()); !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
}

func TestProcKillReachesProcessGroup(t *testing.T) {
	p := startHelper(t, "spawn-group")
	child := waitChildPid(t, p)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, child)
}

func TestProcStartErrors(t *testing.T) {
	if _, err := StartProc(t, ProcSpec{}); err == nil {
		t.Error("StartProc with no path succeeded")
	}
	if _, err := StartProc(t, ProcSpec{Path: "/nonexistent/binary"}); err == nil {
		t.Error("StartProc of a missing binary succeeded")
	}
}

// waitProcState polls /proc until pid is in the given state ('T' stopped).
func waitProcState(t *testing.T, ctx context.Context, pid int, want byte) {
	t.Helper()
	for {
		state, ok := procState(pid)
		if ok && state == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pid %d in state %q, want %q", pid, state, want)
		case <-time.After(pollInterval):
		}
	}
}

// procState returns pid's state letter from /proc/<pid>/stat.
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// waitGone waits until pid has exited (gone or a zombie).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, ok := procState(pid)
		if !ok || state == 'Z' || state == 'X' {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("pid %d still alive (state %q)", pid, state)
		}
		time.Sleep(pollInterval)
	}
}

// waitChildPid waits for a spawn helper to print its child's pid.
func waitChildPid(t *testing.T, p *Proc) int {
	t.Helper()
	if err := p.WaitOutput(t.Context(), "\n"); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscanf(strings.TrimSpace(p.Tail()), "child pid=%d", &pid); err != nil {
		t.Fatalf("parse %q: %v", p.Tail(), err)
	}
	return pid
}

// TestProcDiesWithParent checks Pdeathsig: a child started with the
// harness's SysProcAttr dies when its parent is killed, even though it is in
// its own process group, which a group kill would not reach.
func TestProcDiesWithParent(t *testing.T) {
	p := startHelper(t, "spawn-orphan")
	child := waitChildPid(t, p)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	// Kill the helper alone, not its group.
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, child)
}
