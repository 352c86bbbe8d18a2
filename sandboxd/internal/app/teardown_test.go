package app_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// hostProcesses returns the pids of the live processes of this host whose command line is exactly argv —
// sandbox processes of both drivers are host processes, a container's only in another pid namespace.
func hostProcesses(t *testing.T, argv ...string) []int {
	t.Helper()
	want := strings.Join(argv, "\x00") + "\x00"
	des, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []int
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + de.Name() + "/cmdline")
		if err != nil || string(cmdline) != want {
			continue
		}
		stat, err := os.ReadFile("/proc/" + de.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			out = append(out, pid)
		}
	}
	return out
}

// Every process of a sandbox ends with it: `setsid cmd &`, a double-forked daemon, a daemon started by a
// background process — none survives DestroySandbox, which DELETE /api/sessions/{id} calls (13.4).
func TestDestroyEndsEveryProcessOfTheSandbox(t *testing.T) {
	for _, drv := range []string{"docker", "local"} {
		t.Run(drv, func(t *testing.T) {
			e := start(t, drv, nil)
			ctx := as(t.Context(), "user-a")
			sid := newSession()
			_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
			require.NoError(t, err)

			// Durations no other process of this host runs: the test finds the sandbox's processes by them.
			base := 600000 + rand.IntN(300000)
			arg := func(i int) string { return strconv.Itoa(base + i) }
			res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: fmt.Sprintf(`
				setsid sleep %s > /dev/null 2>&1 &
				(setsid sh -c 'sleep %s & exec sleep %s' > /dev/null 2>&1 &) &
				(trap '' HUP; exec setsid sleep %s) > /dev/null 2>&1 &
				true`, arg(1), arg(2), arg(3), arg(4))})
			require.NoError(t, err)
			require.EqualValues(t, 0, res.GetExitCode(), res.GetStderr())
			_, err = e.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: sid, Name: "dev",
				Command: fmt.Sprintf("setsid sleep %s & exec sleep %s", arg(5), arg(6))})
			require.NoError(t, err)
			for i := 1; i <= 6; i++ {
				eventually(t, 10*time.Second, func() bool { return len(hostProcesses(t, "sleep", arg(i))) == 1 }, "sleep "+arg(i)+" never ran")
			}

			_, err = e.sb.DestroySandbox(ctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid, Forget: true})
			require.NoError(t, err)
			// DestroySandbox returns once the driver removed the sandbox: nothing may be left by then.
			for i := 1; i <= 6; i++ {
				require.Empty(t, hostProcesses(t, "sleep", arg(i)), "sleep %s outlived its sandbox", arg(i))
			}
		})
	}
}
