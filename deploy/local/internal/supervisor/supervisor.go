// Package supervisor runs the product's services as child processes of the launcher and stops them in
// reverse start order, so that the edge stops taking requests before the services behind it go away.
package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Child is one started service.
type Child struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Supervisor owns the children it started.
type Supervisor struct {
	log      *slog.Logger
	children []*Child
	// Exited receives a child that stopped on its own (a crash), so the launcher can take the stack down.
	Exited chan *Child
}

// New returns an empty supervisor.
func New(log *slog.Logger) *Supervisor {
	return &Supervisor{log: log, Exited: make(chan *Child, 8)}
}

// Start launches binary with args and extra environment; its output goes to out with a name prefix.
func (s *Supervisor) Start(name, binary string, env []string, out io.Writer) (*Child, error) {
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = &prefixWriter{w: out, prefix: []byte(fmt.Sprintf("%-9s| ", name))}
	cmd.Stderr = cmd.Stdout
	// Each child gets its own process group: the terminal's Ctrl-C then reaches only the launcher, which
	// stops the children in order. Pdeathsig covers a launcher killed with -9.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
		select {
		case s.Exited <- c:
		default:
		}
	}()
	s.children = append(s.children, c)
	s.log.Info("started", "service", name, "pid", cmd.Process.Pid)
	return c, nil
}

// Err is the child's exit error once it has exited.
func (c *Child) Err() error { return c.err }

// StopAll stops the children in reverse start order: SIGTERM to the child's process group, then SIGKILL
// when grace runs out. Every child is waited for, so nothing is left behind.
func (s *Supervisor) StopAll(grace time.Duration) error {
	var errs []error
	for i := len(s.children) - 1; i >= 0; i-- {
		c := s.children[i]
		if err := c.stop(grace); err != nil {
			errs = append(errs, err)
		}
		s.log.Info("stopped", "service", c.Name)
	}
	s.children = nil
	return errors.Join(errs...)
}

func (c *Child) stop(grace time.Duration) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("%s did not stop within %s and was killed", c.Name, grace)
	}
}

// prefixWriter prefixes every line a child writes, so interleaved logs stay readable.
type prefixWriter struct {
	w       io.Writer
	prefix  []byte
	midLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	var buf []byte
	for len(b) > 0 {
		if !p.midLine {
			buf = append(buf, p.prefix...)
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			buf = append(buf, b...)
			p.midLine = true
			break
		}
		buf = append(buf, b[:i+1]...)
		b = b[i+1:]
		p.midLine = false
	}
	if _, err := p.w.Write(buf); err != nil {
		return 0, err
	}
	return n, nil
}
