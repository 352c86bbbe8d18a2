package proctree

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// spawn runs script with sh and waits for it; whatever it leaves running is what the test ends. The pids of
// the processes it means to leave are the numbers it writes to pids.txt in dir.
func spawn(t *testing.T, dir, script string, env ...string) []int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// No pipes: the daemons would hold them open.
	require.NoError(t, cmd.Run())
	var pids []int
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "pids.txt"))
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			require.NoError(t, err)
			pids = append(pids, pid)
		}
		return len(pids) > 0 && strings.Count(string(b), "\n") >= strings.Count(script, ">> pids.txt")
	}, 5*time.Second, 10*time.Millisecond)
	return pids
}

func alive(pid int) bool {
	p, err := read(pid)
	return err == nil && !p.dead()
}

// The daemons a sandbox leaves: a setsid'd child, a double-forked one, and a fork loop. Every one has left
// the group and session of the command that started it.
const daemons = `
setsid sleep 3001 & echo $! >> pids.txt
(setsid sh -c 'sleep 3002 & echo $! >> pids.txt; exec sleep 3003' & echo $! >> pids.txt) &
setsid sh -c 'i=0; while [ $i -lt 300 ]; do sleep 3004 & i=$((i+1)); done; exec sleep 3005' & echo $! >> pids.txt
`

func TestBelowEndsOrphansReparentedToASubreaper(t *testing.T) {
	// As sandbox-agent in host mode: orphans below this process come back to it instead of init.
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	dir := t.TempDir()
	pids := spawn(t, dir, daemons)
	for _, pid := range pids {
		require.True(t, alive(pid), "pid %d did not start", pid)
	}
	require.NoError(t, End(t.Context(), Below(os.Getpid())))
	for _, pid := range pids {
		require.False(t, alive(pid), "pid %d survived", pid)
	}
	procs, err := Scan()
	require.NoError(t, err)
	require.Empty(t, Below(os.Getpid())(procs), "a descendant survived")
	reapAll()
}

func TestMarkedEndsProcessesWhoseParentIsGone(t *testing.T) {
	dir := t.TempDir()
	marker := "MGX_SANDBOX_ID=proctree-test-" + strconv.Itoa(os.Getpid())
	pids := spawn(t, dir, daemons, marker)
	// One that cleared its environment, but is the child of a marked one, ends too.
	other := spawn(t, t.TempDir(), `setsid sh -c 'env -i /bin/sleep 3006 & echo $! >> pids.txt; exec sleep 3007' & true`, marker)
	// Unmarked processes are left alone.
	bystander := exec.Command("sleep", "3008")
	require.NoError(t, bystander.Start())
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })

	require.NoError(t, End(t.Context(), Marked(marker)))
	for _, pid := range append(pids, other...) {
		require.False(t, alive(pid), "pid %d survived", pid)
	}
	require.True(t, alive(bystander.Process.Pid), "an unmarked process was killed")
	reapAll()
}

func TestSignalChecksTheProcessIsTheOneScanned(t *testing.T) {
	cmd := exec.Command("sleep", "3009")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p, err := read(cmd.Process.Pid)
	require.NoError(t, err)
	stale := p
	stale.Start++ // as if the pid now named a process started later
	require.ErrorIs(t, signal(stale, unix.SIGKILL), unix.ESRCH)
	require.True(t, alive(p.PID))
	require.Error(t, signal(Proc{PID: os.Getpid(), Start: 1}, unix.SIGKILL), "never itself")
	require.NoError(t, signal(p, unix.SIGKILL))
}

// A process End may not signal (here init, which signal always refuses, as the kernel refuses another
// user's) is reported at once, not waited for until the deadline; the others still end.
func TestEndReportsWhatItMayNotSignal(t *testing.T) {
	mine := exec.Command("sleep", "3011")
	require.NoError(t, mine.Start())
	t.Cleanup(func() { _ = mine.Process.Kill(); _ = mine.Wait() })
	sel := func(procs map[int]Proc) []Proc {
		var out []Proc
		for _, pid := range []int{1, mine.Process.Pid} {
			if p, ok := procs[pid]; ok && !p.dead() {
				out = append(out, p)
			}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	require.ErrorContains(t, End(ctx, sel), "may not be signalled")
	require.Less(t, time.Since(begin), 2*time.Second, "waited for a process it may not signal")
	require.False(t, alive(mine.Process.Pid))
}

// reapAll collects the zombies re-parented to this process.
func reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return
		}
	}
}
