package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func runScript(t *testing.T, script string, extra map[string]string) ([]*agentdv1.Event, *sandboxStub) {
	t.Helper()
	stub, sbAddr := startSandboxStub(t)
	env := baseEnv(t, stacktest.SharedRedis(t), sbAddr, script)
	for k, v := range extra {
		env[k] = v
	}
	a := startAgentd(t, env)
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sess.GetSession().GetId(), Content: "go"})
	require.NoError(t, err)
	return collect(t, c, ctx, sess.GetSession().GetId(), 0, runEnded("completed", "stopped", "failed")), stub
}

func find(evs []*agentdv1.Event, typ, contains string) *agentdv1.Event {
	for _, e := range evs {
		if e.GetType() == typ && strings.Contains(e.GetContent(), contains) {
			return e
		}
	}
	return nil
}

func TestBoundsAndEnforcement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		agents string // AGENTD_AGENTS_FILE contents, "" for the default team
		env    map[string]string
		check  func(t *testing.T, evs []*agentdv1.Event, stub *sandboxStub)
	}{
		{
			name: "doc-writing roles write only under docs/",
			script: `
agents:
  mike:
    - tool_calls: [{name: send_message, args: {to: emma, content: "write requirements"}}]
    - tool_calls: [{name: end, args: {}}]
  emma:
    - tool_calls: [{name: file_write, args: {path: src/app.js, content: "x"}}]
    - tool_calls: [{name: file_write, args: {path: docs/requirements.md, content: "# Requirements"}}]
    - tool_calls: [{name: send_message, args: {to: mike, content: "done"}}]
`,
			check: func(t *testing.T, evs []*agentdv1.Event, stub *sandboxStub) {
				require.NotNil(t, find(evs, "tool_result", "only write under docs/"), describeEvents(evs))
				stub.mu.Lock()
				defer stub.mu.Unlock()
				require.NotContains(t, stub.files, "src/app.js")
				require.Equal(t, "# Requirements", stub.files["docs/requirements.md"])
				require.Equal(t, "completed", evs[len(evs)-1].GetData().GetFields()["status"].GetStringValue())
			},
		},
		{
			name: "unusable output is reported back, then ends the member's step visibly",
			script: `
agents:
  mike:
    - tool_calls: [{name: send_message, args: {to: alex, content: "work"}}]
    - tool_calls: [{name: end, args: {}}]
  alex:
    - tool_calls: [{name: file_write, args: "not an object"}]
    - tool_calls: [{name: file_write, args: {content: "no path"}}]
    - tool_calls: [{name: teleport, args: {}}]
`,
			check: func(t *testing.T, evs []*agentdv1.Event, stub *sandboxStub) {
				require.NotNil(t, find(evs, "error", "schema"), describeEvents(evs))
				require.NotNil(t, find(evs, "error", `unknown tool "teleport"`), describeEvents(evs))
				require.NotNil(t, find(evs, "status", "unusable outputs in a row; its step ends"), describeEvents(evs))
				require.Equal(t, "completed", evs[len(evs)-1].GetData().GetFields()["status"].GetStringValue(), "the lead goes on")
				require.Empty(t, stub.files)
			},
		},
		{
			name: "step limit from the agents file stops the run visibly",
			agents: `
agents:
  - name: mike
    title: Lead
    tools: [plan_append, plan_update, send_message, reply_to_human, end]
    limits: {max_steps: 2}
  - name: alex
    title: Engineer
    tools: [sandbox_shell, send_message]
`,
			script: `
agents:
  mike:
    - tool_calls: [{name: plan_append, args: {tasks: [{title: a, assignee: alex}]}}]
    - tool_calls: [{name: plan_append, args: {tasks: [{title: b, assignee: alex}]}}]
    - tool_calls: [{name: plan_append, args: {tasks: [{title: c, assignee: alex}]}}]
`,
			check: func(t *testing.T, evs []*agentdv1.Event, _ *sandboxStub) {
				last := evs[len(evs)-1]
				require.Equal(t, "stopped", last.GetData().GetFields()["status"].GetStringValue(), describeEvents(evs))
				require.Contains(t, last.GetContent(), "step limit (2")
			},
		},
		{
			name: "tool call limit",
			env:  map[string]string{"AGENTD_MAX_TOOL_CALLS": "2"},
			script: `
agents:
  mike:
    - tool_calls:
        - {name: plan_append, args: {tasks: [{title: a, assignee: alex}]}}
        - {name: plan_append, args: {tasks: [{title: b, assignee: alex}]}}
        - {name: plan_append, args: {tasks: [{title: c, assignee: alex}]}}
`,
			check: func(t *testing.T, evs []*agentdv1.Event, _ *sandboxStub) {
				require.Contains(t, evs[len(evs)-1].GetContent(), "tool call limit (2)", describeEvents(evs))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.agents != "" {
				p := filepath.Join(t.TempDir(), "agents.yaml")
				require.NoError(t, os.WriteFile(p, []byte(tc.agents), 0o600))
				env["AGENTD_AGENTS_FILE"] = p
			}
			evs, stub := runScript(t, tc.script, env)
			tc.check(t, evs, stub)
		})
	}
}

// A provider that sends tool calls without ids (some OpenAI-compatible servers do) still gets each
// call executed once: the workflow gives them ids unique within the run, which key the idempotency
// records.
func TestToolCallsWithoutIDs(t *testing.T) {
	t.Parallel()
	stub, sbAddr := startSandboxStub(t)
	var turns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		var delta string
		switch turns.Add(1) {
		case 1:
			delta = `{"tool_calls":[{"index":0,"type":"function","function":{"name":"send_message","arguments":"{\"to\":\"alex\",\"content\":\"run two commands\"}"}}]}`
		case 2:
			delta = `{"tool_calls":[{"index":0,"type":"function","function":{"name":"sandbox_shell","arguments":"{\"command\":\"echo one\"}"}}]}`
		case 3:
			delta = `{"tool_calls":[{"index":0,"type":"function","function":{"name":"sandbox_shell","arguments":"{\"command\":\"echo two\"}"}}]}`
		case 4:
			delta = `{"content":"both ran"}`
		default:
			delta = `{"tool_calls":[{"index":0,"type":"function","function":{"name":"end","arguments":"{}"}}]}`
		}
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":`+delta+`}]}`+"\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	env := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
	env["AGENTD_LLM_PROVIDER"] = "openai"
	env["OPENAI_BASE_URL"] = srv.URL
	a := startAgentd(t, env)
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sess.GetSession().GetId(), Content: "go"})
	require.NoError(t, err)
	evs := collect(t, c, ctx, sess.GetSession().GetId(), 0, runEnded("completed", "failed", "stopped"))
	require.Equal(t, "completed", evs[len(evs)-1].GetData().GetFields()["status"].GetStringValue(), describeEvents(evs))
	stub.mu.Lock()
	defer stub.mu.Unlock()
	require.Equal(t, []string{"echo one", "echo two"}, stub.execs)
}

// A run whose queue entry was lost (its replica died between storing the run and XADD) wedges its
// session only until the user's next message: that one goes to the run, and re-enqueues it.
func TestStrandedRunIsRequeued(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	redisURL := stacktest.SharedRedis(t)
	env := baseEnv(t, redisURL, sbAddr, askScript)
	env["AGENTD_REQUEUE_AFTER"] = "1ns" // any age counts as stranded here
	a := startAgentd(t, env)
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()

	opt, err := redis.ParseURL(redisURL)
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	msg := events.Scope{SessionID: sid}.Message(uuid.NewString(), events.SenderUser, "", "lost")
	_, rid, err := store.New(rdb).StartRun(ctx, "alice", msg, uuid.NewString()) // stored, never enqueued
	require.NoError(t, err)

	steer, err := c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "hello?"})
	require.NoError(t, err)
	require.Equal(t, rid, steer.GetRunId())
	evs := collect(t, c, ctx, sid, 0, runEnded("waiting"))
	require.Equal(t, rid, evs[len(evs)-1].GetRunId(), "the stranded run was executed")
}
