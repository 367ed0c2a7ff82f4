//go:build unix && !linux

package procs

import "syscall"

// SysProcAttr puts a child in its own process group, so signals reach its
// children too. Outside Linux there is no Pdeathsig: a process outlives a test
// binary that dies without running its cleanups.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitStopped cannot observe thread states outside Linux; Stop returns as
// soon as SIGSTOP is sent.
func waitStopped(pid int) error { return nil }
