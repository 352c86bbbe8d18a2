package local

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, stacktest.Binaries("sandbox-agent"))
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// startDaemons has the sandbox leave processes that are in no process group or session of a command — a
// setsid'd child, a double-forked daemon, one started by a background process — and returns their pids.
func startDaemons(t *testing.T, inst driver.Instance) []int {
	t.Helper()
	c := agentclient.New(inst.Socket, inst.PID)
	defer c.Close()
	ctx := t.Context()
	require.Eventually(t, func() bool { _, err := c.Health(ctx); return err == nil }, 10*time.Second, 20*time.Millisecond)
	var out agentclient.Output
	res, err := c.Exec(ctx, agentapi.ExecRequest{Timeout: 10 * time.Second, Command: `
		setsid sleep 5001 > /dev/null 2>&1 & echo $! >> pids.txt
		(setsid sh -c 'sleep 5002 & echo $! >> pids.txt; exec sleep 5003' > /dev/null 2>&1 & echo $! >> pids.txt) &
		sleep 0.2`}, out.Write)
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, string(out.Stderr))
	_, err = c.StartProcess(ctx, agentapi.StartProcessRequest{Name: "dev", Command: `setsid sleep 5004 & echo $! >> pids.txt; exec sleep 5005`})
	require.NoError(t, err)
	var pids []int
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(inst.Workspace, "pids.txt"))
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
		return len(pids) == 4
	}, 5*time.Second, 10*time.Millisecond)
	for _, pid := range pids {
		require.True(t, alive(pid), "pid %d did not start", pid)
	}
	return pids
}

// Remove ends every process of the sandbox — however the agent is doing (13.4).
func TestRemoveEndsEveryProcess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, agentPID int)
		// within bounds Remove: the agent's grace and a sweep when it cannot end its processes itself.
		within time.Duration
	}{
		{"the agent ends them", func(*testing.T, int) {}, agentStopGrace},
		{"a stopped agent is ended with its tree", func(t *testing.T, pid int) {
			// SIGTERM stays pending on a stopped process: the agent cannot act, the driver must.
			require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		}, agentStopGrace + sweepBudget},
		{"orphans of a dead agent are found by their marker", func(t *testing.T, pid int) {
			require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
			require.Eventually(t, func() bool { return !alive(pid) }, 5*time.Second, 10*time.Millisecond)
		}, sweepBudget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(Options{AgentBinary: stacktest.Bin(t, "sandbox-agent"), RunDir: stacktest.RunDir(t)})
			require.NoError(t, err)
			inst, err := d.Create(t.Context(), driver.Spec{Name: "sbx-" + strconv.Itoa(os.Getpid())})
			require.NoError(t, err)
			t.Cleanup(func() { _ = d.Remove(context.Background(), inst.ID) })
			pids := startDaemons(t, inst)
			tc.before(t, inst.PID)

			begin := time.Now()
			require.NoError(t, d.Remove(t.Context(), inst.ID))
			require.Less(t, time.Since(begin), tc.within)
			for _, pid := range append(pids, inst.PID) {
				require.False(t, alive(pid), "pid %d outlived its sandbox", pid)
			}
			_, err = os.Stat(filepath.Dir(inst.Workspace))
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

// The marker names one sandbox: removing it leaves another's processes running.
func TestRemoveSparesOtherSandboxes(t *testing.T) {
	d, err := New(Options{AgentBinary: stacktest.Bin(t, "sandbox-agent"), RunDir: stacktest.RunDir(t)})
	require.NoError(t, err)
	var insts []driver.Instance
	for _, name := range []string{"one", "two"} {
		inst, err := d.Create(t.Context(), driver.Spec{Name: name})
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Remove(context.Background(), inst.ID) })
		insts = append(insts, inst)
	}
	pids := startDaemons(t, insts[1])
	require.NoError(t, d.Remove(t.Context(), insts[0].ID))
	for _, pid := range append(pids, insts[1].PID) {
		require.True(t, alive(pid), "pid %d of another sandbox was ended", pid)
	}
}
