package stacktest

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fmt"
	"strconv"

	"github.com/mgx-ai/mgx/pkg/procgroup"
)

// StopGrace is how long a process gets to stop on SIGTERM before it is killed. A service's own
// shutdown budget in tests is a few seconds; a loaded machine may need more to run it.
const StopGrace = 30 * time.Second

// Proc is a child process started by a test: its own process group, killed with the test binary
// (parent-death signal), its output kept and shown when the test fails (or always, with
// MGX_TEST_LOG=1), and stopped — SIGTERM, then SIGKILL after StopGrace — when the test ends.
type Proc struct {
	Name  string
	group *procgroup.Group
	out   *Buffer
}

// Start runs binary as name with exactly baseEnv plus env, and stops it when t ends.
func Start(t testing.TB, name, binary string, env map[string]string, args ...string) *Proc {
	t.Helper()
	vars := baseEnv()
	for k, v := range env {
		vars[k] = v
	}
	environ := make([]string, 0, len(vars))
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	sort.Strings(environ)
	p := &Proc{Name: name, out: &Buffer{}}
	g, err := procgroup.Start(binary, procgroup.Options{Args: args, Env: environ, Output: p.out})
	if err != nil {
		t.Fatalf("stacktest: %s: %v", name, err)
	}
	p.group = g
	t.Cleanup(func() {
		if err := p.Stop(StopGrace); err != nil {
			t.Errorf("stacktest: %s: %v", name, err)
		}
		if t.Failed() || os.Getenv("MGX_TEST_LOG") != "" {
			t.Logf("---- %s (%s) output ----\n%s", name, filepath.Base(binary), p.Output())
		}
	})
	return p
}

// Pid is the process id (and process group id).
func (p *Proc) Pid() int { return p.group.Pid() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.group.Done() }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool { return p.group.Exited() }

// Err waits for the process and returns its exit error.
func (p *Proc) Err() error { return p.group.Err() }

// Output is everything the process wrote so far (stdout and stderr).
func (p *Proc) Output() string { return p.out.String() }

// Stop ends the process gracefully: SIGTERM to its group, SIGKILL once grace passes (then it returns
// procgroup.ErrKilled).
func (p *Proc) Stop(grace time.Duration) error { return p.group.Stop(grace) }

// Kill ends the process group with SIGKILL: no shutdown code runs.
func (p *Proc) Kill() { p.group.Kill() }

// Signal sends sig to the process alone.
func (p *Proc) Signal(sig syscall.Signal) error { return p.group.Signal(sig) }

// Buffer is an output sink safe for the writers of exec and the readers of a test.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Contains reports whether the output so far contains s.
func (b *Buffer) Contains(s string) bool { return strings.Contains(b.String(), s) }

// Log is the process's output buffer, for tests that search it while the process runs.
func (p *Proc) Log() *Buffer { return p.out }

// Diagnose describes the process and its descendants as the kernel sees them (state, what each
// waits in, command line), for a test that gives up waiting on it: "S (sleeping) in ep_poll" and
// "T (stopped)" tell very different stories.
func (p *Proc) Diagnose() string {
	var b strings.Builder
	var walk func(pid, depth int)
	walk = func(pid, depth int) {
		state := "gone"
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "State:"); ok {
					state = strings.TrimSpace(v)
				}
			}
		}
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fmt.Fprintf(&b, "%s%d %s in %s: %s\n", strings.Repeat("  ", depth), pid, state, wchan,
			strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
		for _, child := range children(pid) {
			walk(child, depth+1)
		}
	}
	walk(p.Pid(), 0)
	return b.String()
}

// children are the pids whose parent is pid.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b)[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(s))); err == nil {
				out = append(out, c)
			}
		}
	}
	sort.Ints(out)
	return out
}

// DumpStacks asks a Go process that a test gave up waiting on for the stacks of all its goroutines:
// SIGQUIT makes the Go runtime print them to stderr (kept in the process's output, which the test
// shows once it fails) and exit. What the kernel says (Diagnose) names the wait; the stacks name the
// line. It waits up to grace for the process to exit and reports whether it did.
func (p *Proc) DumpStacks(grace time.Duration) bool {
	if p.Exited() {
		return true
	}
	if err := p.Signal(syscall.SIGQUIT); err != nil {
		return false
	}
	select {
	case <-p.Done():
		return true
	case <-time.After(grace):
		return false
	}
}
