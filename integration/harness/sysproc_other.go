//go:build unix && !linux

package harness

import "syscall"

// sysProcAttr puts the child in its own process group, so signals reach its
// children too. Outside Linux there is no Pdeathsig: a process outlives a test
// binary that dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
