package agent

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// procAlive reports whether pid runs (a zombie is dead).
func procAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// Every process a sandbox started ends when its agent stops, including those that left the process group and
// session of their command: `setsid cmd &`, a double-forked daemon, one started from a background process
// (13.4).
func TestShutdownEndsEveryDescendant(t *testing.T) {
	// What sandbox-agent's main does in host mode: orphans come back to the agent (here, the test process)
	// instead of going to init.
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	a := startAgentIn(t, nil)
	ctx := t.Context()

	res, err := run(ctx, a.Client, agentapi.ExecRequest{Timeout: 10 * time.Second, Command: `
		setsid sleep 4001 > /dev/null 2>&1 & echo $! >> pids.txt
		(setsid sh -c 'sleep 4002 & echo $! >> pids.txt; exec sleep 4003' > /dev/null 2>&1 & echo $! >> pids.txt) &
		(trap '' HUP; exec setsid sleep 4004) > /dev/null 2>&1 & echo $! >> pids.txt
		sleep 0.2`})
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, string(res.Stderr))
	_, err = a.StartProcess(ctx, agentapi.StartProcessRequest{Name: "daemon", Command: `setsid sleep 4005 & echo $! >> pids.txt; exec sleep 4006`})
	require.NoError(t, err)

	var pids []int
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(a.ws("pids.txt"))
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
		return len(pids) == 5
	}, 5*time.Second, 10*time.Millisecond)
	for _, pid := range pids {
		require.True(t, procAlive(pid), "pid %d is not running before the agent stops", pid)
	}

	begin := time.Now()
	a.stop()
	require.Less(t, time.Since(begin), sweepBudget)
	for _, pid := range pids {
		require.False(t, procAlive(pid), "pid %d outlived the agent", pid)
	}
}
