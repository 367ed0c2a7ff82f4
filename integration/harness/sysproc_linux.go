//go:build linux

package harness

import "syscall"

// sysProcAttr puts the child in its own process group, so signals reach its
// children too, and asks the kernel to SIGKILL it when the test binary dies.
//
// Pdeathsig fires when the OS thread that started the child exits, not only
// the process. The Go runtime does not retire threads except those of
// goroutines that exit while locked with runtime.LockOSThread, so processes
// must not be started from such goroutines.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
