// Package procgroup runs a child process the way every mgx launcher needs one: in a process group of
// its own, so a stop reaches whatever it forked (a sandbox agent, a shell's children) and the
// terminal's Ctrl-C reaches only the parent; with a parent-death signal, so nothing outlives a parent
// killed with -9; and stopped with SIGTERM to the whole group, then SIGKILL once a grace period ends.
// `make run`'s supervisor and the test harness both start their children here.
package procgroup

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Options configures Start.
type Options struct {
	// Args are the arguments after the binary.
	Args []string
	// Env is the child's whole environment (KEY=value). Nil means an empty environment: callers pass
	// what the child needs explicitly, so nothing of the parent's leaks into it by accident.
	Env []string
	// Dir is the working directory; empty means the parent's.
	Dir string
	// Output receives stdout and stderr; nil discards them.
	Output io.Writer
	// DeathSignal is what the kernel sends the child when the parent dies; zero means SIGKILL.
	// (It follows the thread that forked; Go retires a thread only when a goroutine exits while
	// locked to it with runtime.LockOSThread, which nothing here does.)
	DeathSignal syscall.Signal
}

// Group is a started child and its process group.
type Group struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	stopOnce sync.Once
	stopErr  error
}

// Start runs binary as the leader of a new process group.
func Start(binary string, o Options) (*Group, error) {
	cmd := exec.Command(binary, o.Args...)
	cmd.Env = o.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = o.Output, o.Output
	sig := o.DeathSignal
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	g := &Group{cmd: cmd, done: make(chan struct{})}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	return g, nil
}

// Pid is the child's process id, which is also its group id.
func (g *Group) Pid() int { return g.cmd.Process.Pid }

// Done is closed once the child has exited.
func (g *Group) Done() <-chan struct{} { return g.done }

// Exited reports whether the child has exited.
func (g *Group) Exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// Err is the child's exit error once it has exited (nil for exit status 0).
func (g *Group) Err() error {
	<-g.done
	return g.err
}

// ErrKilled is returned by Stop when the group did not stop within its grace period.
var ErrKilled = errors.New("procgroup: did not stop in time and was killed")

// Stop sends SIGTERM to the whole group and waits up to grace for the child to exit, then sends
// SIGKILL to the group. It returns nil when the child exited (with any status) within grace, and
// ErrKilled otherwise. Calling it again returns the first result.
func (g *Group) Stop(grace time.Duration) error {
	g.stopOnce.Do(func() {
		if g.Exited() {
			return
		}
		g.signal(syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-g.done:
		case <-timer.C:
			g.signal(syscall.SIGKILL)
			<-g.done
			g.stopErr = ErrKilled
		}
	})
	return g.stopErr
}

// Kill sends SIGKILL to the whole group and waits for the child: no shutdown code runs.
func (g *Group) Kill() {
	g.signal(syscall.SIGKILL)
	<-g.done
}

// Signal sends sig to the child alone (not its group).
func (g *Group) Signal(sig syscall.Signal) error {
	return g.cmd.Process.Signal(sig)
}

func (g *Group) signal(sig syscall.Signal) {
	// The group outlives its leader when a member forked into the background; signal it even if the
	// leader is gone (ESRCH once the whole group is).
	_ = syscall.Kill(-g.cmd.Process.Pid, sig)
}
