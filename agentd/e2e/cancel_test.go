package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/authn"
)

const cancelScript = `
agents:
  mike:
    - tool_calls:
        - {name: send_message, args: {to: alex, content: "run the long job"}}
  alex:
    - tool_calls:
        - {name: sandbox_shell, args: {command: "echo $$ > job.pid; exec sleep 60", timeout: 120}}
`

// Cancelling a run in the middle of a command stops the command's process in the sandbox at once.
func TestCancelMidToolStopsTheSandboxProcess(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "cancel.yaml")
	require.NoError(t, os.WriteFile(script, []byte(cancelScript), 0o600))
	st := startStack(t, "local", map[string]string{"AGENTD_SCRIPT_FILE": script})
	c := dial(t, st.AgentdAddrs[0], st.SandboxdAddr)
	ctx := authn.WithUser(t.Context(), "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	destroyOnCleanup(t, c, "alice", sid)
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "go"})
	require.NoError(t, err)
	evs := collect(t, c, ctx, sid, 0, time.Minute, func(evs []*agentdv1.Event) bool {
		e := evs[len(evs)-1]
		return e.GetType() == "tool_call" && e.GetTool() == "sandbox_shell"
	})

	alive := func() bool {
		r, err := c.sandbox.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: `test -s job.pid && kill -0 "$(cat job.pid)" 2>/dev/null && echo alive || echo gone`, Timeout: 10})
		require.NoError(t, err)
		return strings.TrimSpace(r.GetStdout()) == "alive"
	}
	require.Eventually(t, alive, 10*time.Second, 100*time.Millisecond, "the job runs in the sandbox")

	start := time.Now()
	res, err := c.chat.CancelRun(ctx, &agentdv1.CancelRunRequest{SessionId: sid})
	require.NoError(t, err)
	require.True(t, res.GetCancelled())
	collect(t, c, ctx, sid, evs[len(evs)-1].GetSequence(), 30*time.Second, ended("cancelled"))
	require.Eventually(t, func() bool { return !alive() }, 10*time.Second, 50*time.Millisecond, "the job's process is gone")
	t.Logf("cancel → run cancelled and the sandbox process gone in %v", time.Since(start))

	run, err := c.chat.GetRun(ctx, &agentdv1.GetRunRequest{SessionId: sid})
	require.NoError(t, err)
	require.Equal(t, "cancelled", run.GetRun().GetStatus())
}
