package redistest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill redis-server when the test
// binary dies without running its cleanups (a panic, a timeout, ^C), so no
// server outlives its tests and holds a port. (The signal follows the thread
// that forked; Go retires a thread only when a goroutine exits while locked
// to it with runtime.LockOSThread, which nothing here does.)
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
