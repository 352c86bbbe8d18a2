package agent

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// children starts processes and is the only place that waits for them.
//
// The agent is PID 1 in its container, so every orphan in the sandbox is
// re-parented to it and must be reaped, or zombies pile up until the pids
// limit stops the sandbox. A reaper that calls wait4(-1) would steal exit
// statuses from os/exec's Cmd.Wait, so the agent never uses Cmd.Wait: it
// forks with syscall.ForkExec and this single loop waits for everything,
// handing the statuses of its own children to whoever started them and
// discarding the rest.
type children struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
}

func newChildren() *children {
	return &children{waiters: make(map[int]chan syscall.WaitStatus)}
}

// start forks argv with attr and returns its pid and a channel that receives
// its wait status once.
func (c *children) start(argv0 string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	// Holding mu across the fork closes the race in which a child exits and
	// is reaped before its waiter is registered: reapAll blocks on mu until
	// the registration below is done.
	c.mu.Lock()
	defer c.mu.Unlock()
	pid, err := syscall.ForkExec(argv0, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	c.waiters[pid] = ch
	return pid, ch, nil
}

// run reaps until ctx is done. SIGCHLD notifications coalesce, so each one
// drains every exited child; the ticker covers a signal lost before
// signal.Notify was installed.
func (c *children) run(ctx context.Context) {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		c.reapAll()
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-tick.C:
		}
	}
}

func (c *children) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		c.mu.Lock()
		ch, ok := c.waiters[pid]
		delete(c.waiters, pid)
		c.mu.Unlock()
		if ok {
			ch <- ws
		}
		// Not ours: an orphan re-parented to PID 1. Reaping it is the point.
	}
}

// exitCode turns a wait status into a shell-style exit code.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// killGroup sends sig to the process group led by pid. Every command runs in
// its own group, so this reaches its background children too.
func killGroup(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}
