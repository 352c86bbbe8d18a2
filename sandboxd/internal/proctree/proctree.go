// Package proctree ends the host processes of a sandbox (local driver): every process below a pid, or every
// process carrying a marker in its environment, found through /proc.
//
// A sandbox's processes escape every cheaper handle: a command's process group ends when it calls setsid, a
// session when it double-forks, and pdeathsig reaches only direct children. What they cannot drop is their
// ancestry while the sandbox-agent lives — the agent is a child subreaper, so every orphan below it is
// re-parented to it rather than to init — and, after an agent died, the environment they were started with.
package proctree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is one process as /proc shows it.
type Proc struct {
	PID, PPID int
	// Start is the process's start time in clock ticks after boot: with PID it names one process even after
	// its pid is reused.
	Start uint64
	// State is the state letter of /proc/<pid>/stat; Z and X are dead.
	State byte
}

func (p Proc) dead() bool { return p.State == 'Z' || p.State == 'X' }

type key struct {
	pid   int
	start uint64
}

func (p Proc) key() key { return key{p.PID, p.Start} }

// Scan reads every process of /proc.
func Scan() (map[int]Proc, error) {
	des, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make(map[int]Proc, len(des))
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		if p, err := read(pid); err == nil {
			procs[pid] = p
		}
	}
	return procs, nil
}

// read parses /proc/<pid>/stat. The command name (field 2) may hold spaces and parentheses, so the fields
// are counted from the last ')'.
func read(pid int) (Proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Proc{}, err
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, PPID: ppid, Start: start, State: f[0][0]}, nil
}

// A Selector picks the processes to end from a scan. End calls it again on every scan, so it sees children
// forked and orphans re-parented since the last one.
type Selector func(procs map[int]Proc) []Proc

// Below selects every live descendant of root, never root itself.
func Below(root int) Selector {
	return func(procs map[int]Proc) []Proc { return descendants(procs, map[int]bool{root: true}) }
}

// Tree selects root and every live descendant of it.
func Tree(root int) Selector {
	return func(procs map[int]Proc) []Proc {
		out := descendants(procs, map[int]bool{root: true})
		if p, ok := procs[root]; ok && !p.dead() {
			out = append(out, p)
		}
		return out
	}
}

// Marked selects every live process whose environment holds the entry env ("KEY=value") and every
// descendant of one. The environment is the one the process was started with (/proc/<pid>/environ), which it
// inherited from its parent unless that cleared it; processes of other users are not readable and never
// selected.
func Marked(env string) Selector {
	want := []byte(env)
	return func(procs map[int]Proc) []Proc {
		roots := map[int]bool{}
		var out []Proc
		for pid, p := range procs {
			if p.dead() {
				continue
			}
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil {
				continue
			}
			for entry := range bytes.SplitSeq(b, []byte{0}) {
				if bytes.Equal(entry, want) {
					roots[pid] = true
					out = append(out, p)
					break
				}
			}
		}
		for _, p := range descendants(procs, roots) {
			if !roots[p.PID] {
				out = append(out, p)
			}
		}
		return out
	}
}

// descendants returns the live processes below any of roots.
func descendants(procs map[int]Proc, roots map[int]bool) []Proc {
	children := make(map[int][]int, len(procs))
	for pid, p := range procs {
		children[p.PPID] = append(children[p.PPID], pid)
	}
	var out []Proc
	seen := map[int]bool{}
	queue := make([]int, 0, len(roots))
	for r := range roots {
		queue = append(queue, r)
	}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if seen[c] || roots[c] {
				continue
			}
			seen[c] = true
			if !procs[c].dead() {
				out = append(out, procs[c])
			}
			queue = append(queue, c)
		}
	}
	return out
}

// End kills every process sel selects, until a scan finds none alive or ctx ends.
//
// It first freezes them: SIGSTOP to each selected process, scanning again until a scan selects none that is
// not stopped yet. A stopped process cannot fork, so this converges even against a fork loop, where killing
// as found would race new children. Then SIGKILL to all of them (a stopped process dies of it at once), and
// scans until nothing selected is alive; zombies are dead and left to whoever reaps them. The caller's own
// process and init are never signalled. A process the caller may not signal (another user's, such as a
// setuid program's) is not waited for: End reports it once the others are gone.
func End(ctx context.Context, sel Selector) error {
	stopped := map[key]Proc{}
	denied := map[key]Proc{}
	// send signals p unless it is known, and files it under stopped or denied; it reports whether p was new.
	send := func(p Proc, sig syscall.Signal) bool {
		if _, ok := stopped[p.key()]; ok {
			return false
		}
		if _, ok := denied[p.key()]; ok {
			return false
		}
		switch err := signal(p, sig); {
		case err == nil:
			stopped[p.key()] = p
			return true
		case errors.Is(err, syscall.EPERM):
			denied[p.key()] = p
		}
		return false
	}
	for {
		procs, err := Scan()
		if err != nil {
			return err
		}
		fresh := 0
		for _, p := range sel(procs) {
			if send(p, syscall.SIGSTOP) {
				fresh++
			}
		}
		if fresh == 0 || ctx.Err() != nil {
			break
		}
	}
	for _, p := range stopped {
		_ = signal(p, syscall.SIGKILL)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		procs, err := Scan()
		if err != nil {
			return err
		}
		var alive []Proc
		for _, p := range stopped {
			if now, ok := procs[p.PID]; ok && now.Start == p.Start && !now.dead() {
				alive = append(alive, p)
			}
		}
		for _, p := range sel(procs) {
			if send(p, syscall.SIGKILL) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			if len(denied) > 0 {
				return fmt.Errorf("%d processes may not be signalled (pids %v…)", len(denied), pids(slices.Collect(maps.Values(denied)), 5))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d processes still alive (pids %v…): %w", len(alive), pids(alive, 5), ctx.Err())
		case <-tick.C:
		}
	}
}

func pids(ps []Proc, n int) []int {
	out := make([]int, 0, n)
	for _, p := range ps[:min(n, len(ps))] {
		out = append(out, p.PID)
	}
	return out
}

// signal sends sig to p if p still is the process the scan saw; an error means it was not signalled (ESRCH:
// it is gone or the pid names another process now).
//
// A pid names another process once p was reaped, so a plain kill(2) after a scan could hit an unrelated
// process. A pidfd names one process for good: it is opened first, and the process behind it is then checked
// to be p by its start time. That check is sound because p's pid cannot be reused while the pidfd's process
// holds it, so if the pid shows p's start time after the open, the open got p.
func signal(p Proc, sig syscall.Signal) error {
	if p.PID <= 1 || p.PID == os.Getpid() {
		return syscall.EPERM
	}
	same := func() bool { now, err := read(p.PID); return err == nil && now.Start == p.Start }
	fd, err := unix.PidfdOpen(p.PID, 0)
	if errors.Is(err, unix.ENOSYS) {
		// Kernels before 5.3: the narrow window between check and kill remains.
		if !same() {
			return syscall.ESRCH
		}
		return syscall.Kill(p.PID, sig)
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !same() {
		return syscall.ESRCH
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}
