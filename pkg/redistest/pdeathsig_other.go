//go:build !linux

package redistest

import "os/exec"

// setParentDeathSignal has no portable equivalent outside Linux; servers
// are stopped by test cleanups (and Main) only.
func setParentDeathSignal(*exec.Cmd) {}
