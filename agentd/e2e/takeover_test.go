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
	"github.com/mgx-ai/mgx/pkg/redistest"
)

// Every side-effecting call appends a line to log.txt, so the file shows how often each ran.
const takeoverScript = `
agents:
  mike:
    - tool_calls:
        - {name: send_message, args: {to: alex, content: "append the steps"}}
    - tool_calls:
        - {name: reply_to_human, args: {content: "All steps done."}}
    - tool_calls:
        - {name: end, args: {}}
  alex:
    - tool_calls:
        - {name: sandbox_shell, args: {command: "echo step1 >> log.txt"}}
    - tool_calls:
        - {name: sandbox_shell, args: {command: "sleep 5; echo step2 >> log.txt"}}
    - tool_calls:
        - {name: sandbox_shell, args: {command: "echo step3 >> log.txt"}}
    - tool_calls:
        - {name: send_message, args: {to: mike, content: "steps appended"}}
`

// Two agentd replicas share one Redis. The one executing a run is killed with SIGKILL in the middle
// of a side-effecting tool call; the other claims the run once its lease expires, resumes from the
// last checkpoint and completes it. Completed calls are not repeated, and the call that was cut off
// is reported to the model instead of being run a second time.
//
// With SIGTERM instead, the stopping replica hands the run back (releases its lease) and the other
// one resumes it the same way.
func TestTakeover(t *testing.T) {
	for _, how := range []string{"kill -9", "SIGTERM"} {
		t.Run(how, func(t *testing.T) { testTakeover(t, how) })
	}
}

func testTakeover(t *testing.T, how string) {
	redisURL := redistest.Start(t)
	sbx := startSandboxd(t, "local", redisURL)
	script := filepath.Join(t.TempDir(), "takeover.yaml")
	require.NoError(t, os.WriteFile(script, []byte(takeoverScript), 0o600))
	extra := map[string]string{"AGENTD_SCRIPT_FILE": script}

	a, addrA := startAgentd(t, "replica-a", redisURL, sbx.addr, extra)
	ca := dial(t, addrA, sbx.addr)
	ctx := authn.WithUser(t.Context(), "alice")
	sess, err := ca.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	destroyOnCleanup(t, ca, "alice", sid)
	_, err = ca.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "go"})
	require.NoError(t, err)

	// Replica A alone executes the run; wait until it is inside the second call.
	before := collect(t, ca, ctx, sid, 0, time.Minute, func(evs []*agentdv1.Event) bool {
		e := evs[len(evs)-1]
		return e.GetType() == "tool_call" && strings.Contains(e.GetContent(), "step2")
	})
	_, addrB := startAgentd(t, "replica-b", redisURL, sbx.addr, extra)
	killedAt := time.Now()
	if how == "SIGTERM" {
		a.stop()
	} else {
		a.kill()
	}

	cb := dial(t, addrB, sbx.addr)
	after := collect(t, cb, ctx, sid, before[len(before)-1].GetSequence(), 2*time.Minute, ended("completed", "failed", "stopped"))
	t.Logf("replica B completed the run %v after replica A was stopped (%s)", time.Since(killedAt), how)
	require.Equal(t, "completed", runStatus(after[len(after)-1]), describe(after))

	var resumed, interrupted bool
	for _, e := range after {
		resumed = resumed || (e.GetType() == "status" && strings.Contains(e.GetContent(), "resumed"))
		if e.GetType() == "tool_result" && strings.Contains(e.GetContent(), "interrupted") {
			interrupted = true
		}
		require.False(t, e.GetType() == "tool_call" && strings.Contains(e.GetContent(), "step1"), "a completed call is not replayed: %s", describe(after))
	}
	require.True(t, resumed, describe(after))
	require.True(t, interrupted, "the cut-off call is reported, not repeated: %s", describe(after))

	f, err := ca.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "log.txt"})
	require.NoError(t, err)
	lines := strings.Fields(f.GetContent())
	t.Logf("log.txt: %q", lines)
	count := map[string]int{}
	for _, l := range lines {
		count[l]++
	}
	require.Equal(t, 1, count["step1"], "step1 ran exactly once")
	require.LessOrEqual(t, count["step2"], 1, "the interrupted step2 ran at most once")
	require.Equal(t, 1, count["step3"], "step3 ran exactly once, on replica B")

	// The whole log, read from replica B, is gap-free from 1.
	all := collect(t, cb, ctx, sid, 0, 10*time.Second, func(evs []*agentdv1.Event) bool {
		return evs[len(evs)-1].GetSequence() == after[len(after)-1].GetSequence()
	})
	for i, e := range all {
		require.Equal(t, uint32(i+1), e.GetSequence())
	}
}
