// Package supervisor runs the product's services as child processes of the launcher and stops them in
// reverse start order, so that the edge stops taking requests before the services behind it go away.
package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/pkg/procgroup"
)

// Child is one started service.
type Child struct {
	Name  string
	group *procgroup.Group
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

// Start launches binary with the launcher's environment plus env; its output goes to out with a name
// prefix.
func (s *Supervisor) Start(name, binary string, env []string, out io.Writer) (*Child, error) {
	// Each child gets its own process group (procgroup): the terminal's Ctrl-C then reaches only the
	// launcher, which stops the children in order. SIGTERM on the launcher's death gives a child killed
	// with its launcher the same graceful stop as Ctrl-C (sandboxd still destroys its sandboxes).
	g, err := procgroup.Start(binary, procgroup.Options{
		Env:         append(os.Environ(), env...),
		Output:      &prefixWriter{w: out, prefix: []byte(fmt.Sprintf("%-9s| ", name))},
		DeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, group: g}
	go func() {
		<-g.Done()
		select {
		case s.Exited <- c:
		default:
		}
	}()
	s.children = append(s.children, c)
	s.log.Info("started", "service", name, "pid", g.Pid())
	return c, nil
}

// Pid is the child's process id (and its process group's).
func (c *Child) Pid() int { return c.group.Pid() }

// Err is the child's exit error once it has exited.
func (c *Child) Err() error { return c.group.Err() }

// StopAll stops the children in reverse start order: SIGTERM to the child's process group, then SIGKILL
// when grace runs out. Every child is waited for, so nothing is left behind.
func (s *Supervisor) StopAll(grace time.Duration) error {
	var errs []error
	for i := len(s.children) - 1; i >= 0; i-- {
		c := s.children[i]
		if err := c.group.Stop(grace); err != nil {
			errs = append(errs, fmt.Errorf("%s did not stop within %s and was killed", c.Name, grace))
		}
		s.log.Info("stopped", "service", c.Name)
	}
	s.children = nil
	return errors.Join(errs...)
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
