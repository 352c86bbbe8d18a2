package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"

	"github.com/mgx-ai/mgx/pkg/rpcerr"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestSessions(t *testing.T) {
	t.Parallel()
	stub, sbAddr := startSandboxStub(t)
	a := startAgentd(t, baseEnv(t, stacktest.SharedRedis(t), sbAddr, ""))
	c := dial(t, a.addr)
	alice, bob := as(t, "alice"), as(t, "bob")

	first, err := c.sessions.CreateSession(alice, &agentdv1.CreateSessionRequest{Title: "first"})
	require.NoError(t, err)
	require.Equal(t, "alice", first.GetSession().GetOwnerId())
	require.Equal(t, "alice", stub.launched[first.GetSession().GetId()], "the sandbox is launched as the owner")
	time.Sleep(2 * time.Millisecond)
	second, err := c.sessions.CreateSession(alice, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	require.Equal(t, "New session", second.GetSession().GetTitle())

	list, err := c.sessions.ListSessions(alice, &agentdv1.ListSessionsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetSessions(), 2)
	require.Equal(t, second.GetSession().GetId(), list.GetSessions()[0].GetId(), "newest first")
	empty, err := c.sessions.ListSessions(bob, &agentdv1.ListSessionsRequest{})
	require.NoError(t, err)
	require.Empty(t, empty.GetSessions())

	got, err := c.sessions.GetSession(alice, &agentdv1.GetSessionRequest{Id: first.GetSession().GetId()})
	require.NoError(t, err)
	require.Equal(t, "first", got.GetSession().GetTitle())

	for name, call := range map[string]func() error{
		"get": func() error {
			_, err := c.sessions.GetSession(bob, &agentdv1.GetSessionRequest{Id: first.GetSession().GetId()})
			return err
		},
		"delete": func() error {
			_, err := c.sessions.DeleteSession(bob, &agentdv1.DeleteSessionRequest{Id: first.GetSession().GetId()})
			return err
		},
		"messages": func() error {
			_, err := c.sessions.ListMessages(bob, &agentdv1.ListMessagesRequest{SessionId: first.GetSession().GetId()})
			return err
		},
		"post": func() error {
			_, err := c.chat.PostMessage(bob, &agentdv1.PostMessageRequest{SessionId: first.GetSession().GetId(), Content: "hi"})
			return err
		},
		"cancel": func() error {
			_, err := c.chat.CancelRun(bob, &agentdv1.CancelRunRequest{SessionId: first.GetSession().GetId()})
			return err
		},
		"launch": func() error {
			_, err := c.sessions.LaunchSandbox(bob, &agentdv1.LaunchSandboxRequest{SessionId: first.GetSession().GetId()})
			return err
		},
		"unknown": func() error {
			_, err := c.sessions.GetSession(alice, &agentdv1.GetSessionRequest{Id: uuid.NewString()})
			return err
		},
	} {
		t.Run("not found for others/"+name, func(t *testing.T) {
			require.Equal(t, codes.NotFound, status.Code(call()))
		})
	}

	_, err = c.sessions.GetSession(alice, &agentdv1.GetSessionRequest{Id: "not-a-uuid"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = c.sessions.GetSession(t.Context(), &agentdv1.GetSessionRequest{Id: uuid.NewString()})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no user, no sessions")

	launched, err := c.sessions.LaunchSandbox(alice, &agentdv1.LaunchSandboxRequest{Title: "via launch"})
	require.NoError(t, err)
	require.Equal(t, "via launch", launched.GetSession().GetTitle())
	require.Equal(t, "/workspace", launched.GetWorkspacePath())
	require.NotEmpty(t, launched.GetContainerId())

	_, err = c.sessions.DeleteSession(alice, &agentdv1.DeleteSessionRequest{Id: first.GetSession().GetId()})
	require.NoError(t, err)
	require.Contains(t, stub.destroyed, first.GetSession().GetId(), "the sandbox is destroyed and forgotten")
	_, err = c.sessions.GetSession(alice, &agentdv1.GetSessionRequest{Id: first.GetSession().GetId()})
	require.Equal(t, codes.NotFound, status.Code(err))

	agents, err := c.agents.ListAgents(alice, &agentdv1.ListAgentsRequest{})
	require.NoError(t, err)
	var names []string
	for _, ag := range agents.GetAgents() {
		names = append(names, ag.GetName())
	}
	require.Equal(t, []string{"mike", "emma", "bob", "alex", "david", "iris"}, names)
}

func TestCreateSessionFailsClearlyWithoutSandboxd(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, stacktest.SharedRedis(t), "127.0.0.1:1", "")
	env["AGENTD_SANDBOX_LAUNCH_TIMEOUT"] = "2s"
	a := startAgentd(t, env)
	c := dial(t, a.addr)
	_, err := c.sessions.CreateSession(as(t, "alice"), &agentdv1.CreateSessionRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	list, err := c.sessions.ListSessions(as(t, "alice"), &agentdv1.ListSessionsRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetSessions(), "no half-made session is left")
}

// The basic team flow: the lead plans and delegates, the member runs a tool and reports, the lead
// answers the user. Events arrive in order with strictly increasing sequences, any replica replays
// them from any point, and the message history agrees with the log.
const basicScript = `
agents:
  mike:
    - text: "Planning."
      tool_calls:
        - {name: plan_append, args: {tasks: [{id: t1, title: Say hi, assignee: alex}]}}
    - tool_calls:
        - {name: send_message, args: {to: alex, content: "say hi"}}
    - tool_calls:
        - {name: plan_update, args: {task_id: t1, status: done}}
    - tool_calls:
        - {name: reply_to_human, args: {content: "All done."}}
    - tool_calls:
        - {name: end, args: {}}
  alex:
    - text: "Running it."
      tool_calls:
        - {name: sandbox_shell, args: {command: "echo hi"}}
    - tool_calls:
        - {name: file_write, args: {path: hi.txt, content: hi}}
    - tool_calls:
        - {name: send_message, args: {to: mike, content: "said hi"}}
`

func TestRunStreamsInOrderAndHistoryAgrees(t *testing.T) {
	t.Parallel()
	stub, sbAddr := startSandboxStub(t)
	redisURL := stacktest.SharedRedis(t)
	a := startAgentd(t, baseEnv(t, redisURL, sbAddr, basicScript))
	other := startAgentd(t, baseEnv(t, redisURL, sbAddr, basicScript))
	c, c2 := dial(t, a.addr), dial(t, other.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()

	posted, err := c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "say hi"})
	require.NoError(t, err)
	require.Equal(t, "user", posted.GetUser().GetSender())
	require.Empty(t, posted.GetResponses())
	require.NotEmpty(t, posted.GetRunId())

	evs := collect(t, c, ctx, sid, 0, runEnded("completed"))
	for i, e := range evs {
		require.Equal(t, uint32(i+1), e.GetSequence(), "strictly increasing from 1")
	}
	types := map[string]int{}
	for _, e := range evs {
		types[e.GetType()]++
	}
	for _, typ := range []string{"message", "run", "status", "plan", "task", "tool_call", "tool_result", "file_change", "token"} {
		require.Positive(t, types[typ], "missing %s events: %s", typ, describeEvents(evs))
	}
	require.Equal(t, 1, stub.execCount())
	require.Equal(t, "hi", stub.files["hi.txt"])

	// Replay from the middle on the other replica: exactly the rest, no gaps, no duplicates.
	mid := evs[len(evs)/2].GetSequence()
	rest := collect(t, c2, ctx, sid, mid, func(got []*agentdv1.Event) bool {
		return got[len(got)-1].GetSequence() == evs[len(evs)-1].GetSequence()
	})
	require.Len(t, rest, len(evs)-int(mid))
	require.Equal(t, mid+1, rest[0].GetSequence())

	msgs, err := c.sessions.ListMessages(ctx, &agentdv1.ListMessagesRequest{SessionId: sid})
	require.NoError(t, err)
	var fromLog []string
	for _, e := range evs {
		// Messages, and status and error lines (so a reload shows them too).
		if e.GetType() == "message" || e.GetType() == "status" || e.GetType() == "error" {
			fromLog = append(fromLog, e.GetMessageId())
		}
	}
	var fromHistory []string
	for _, m := range msgs.GetMessages() {
		fromHistory = append(fromHistory, m.GetId())
	}
	require.Equal(t, fromLog, fromHistory, "history agrees with the log")
	require.Equal(t, "say hi", msgs.GetMessages()[0].GetContent())
	var last *agentdv1.Message
	for _, m := range msgs.GetMessages() {
		if m.GetSender() != "status" {
			last = m
		}
	}
	require.Equal(t, "All done.", last.GetContent())
	require.Equal(t, "mike", last.GetSender())
	require.Equal(t, "Mike", last.GetAgent(), "the agent field carries the display name")
}

const blockingScript = `
agents:
  mike:
    - tool_calls:
        - {name: send_message, args: {to: alex, content: "work"}}
  alex:
    - tool_calls:
        - {name: sandbox_shell, args: {command: "block forever"}}
`

func TestSecondMessageSteersAndCancelStopsTool(t *testing.T) {
	t.Parallel()
	stub, sbAddr := startSandboxStub(t)
	a := startAgentd(t, baseEnv(t, stacktest.SharedRedis(t), sbAddr, blockingScript))
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "go"})
	require.NoError(t, err)
	evs := collect(t, c, ctx, sid, 0, func(evs []*agentdv1.Event) bool {
		return evs[len(evs)-1].GetType() == "tool_call" && evs[len(evs)-1].GetTool() == "sandbox_shell"
	})

	steer, err := c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "again"})
	require.NoError(t, err, "a second message during a run is accepted (201)")
	require.True(t, steer.GetSteered())
	require.Equal(t, evs[len(evs)-1].GetRunId(), steer.GetRunId(), "it goes to the active run")

	start := time.Now()
	res, err := c.chat.CancelRun(ctx, &agentdv1.CancelRunRequest{SessionId: sid})
	require.NoError(t, err)
	require.True(t, res.GetCancelled())
	select {
	case cmd := <-stub.execStop:
		require.Equal(t, "block forever", cmd)
	case <-time.After(5 * time.Second):
		t.Fatal("the running tool was not stopped")
	}
	collect(t, c, ctx, sid, evs[len(evs)-1].GetSequence(), runEnded("cancelled"))
	t.Logf("cancel to tool stop and cancelled event: %v", time.Since(start))

	// The session is free again.
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "next"})
	require.NoError(t, err)
}

const askScript = `
agents:
  mike:
    - tool_calls:
        - {name: ask_human, args: {question: "Which colour?"}}
    - tool_calls:
        - {name: reply_to_human, args: {content: "Got it."}}
    - tool_calls:
        - {name: end, args: {}}
`

func TestAskHumanSurvivesRestart(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	redisURL := stacktest.SharedRedis(t)
	a := startAgentd(t, baseEnv(t, redisURL, sbAddr, askScript))
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	_, err = c.chat.GetRun(ctx, &agentdv1.GetRunRequest{SessionId: sid})
	require.Equal(t, codes.NotFound, status.Code(err), "no run yet")
	_, err = c.chat.AnswerQuestion(ctx, &agentdv1.AnswerQuestionRequest{SessionId: sid, Content: "blue"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "nothing to answer yet")
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "paint it"})
	require.NoError(t, err)
	evs := collect(t, c, ctx, sid, 0, runEnded("waiting"))
	run, err := c.chat.GetRun(ctx, &agentdv1.GetRunRequest{SessionId: sid})
	require.NoError(t, err)
	require.Equal(t, "waiting", run.GetRun().GetStatus())
	require.True(t, run.GetRun().GetActive())
	require.Equal(t, "Which colour?", run.GetRun().GetQuestion())
	var asked bool
	for _, e := range evs {
		asked = asked || (e.GetType() == "message" && e.GetContent() == "Which colour?")
	}
	require.True(t, asked, describeEvents(evs))

	a.stop() // the replica goes away while the run waits
	b := startAgentd(t, baseEnv(t, redisURL, sbAddr, askScript))
	c = dial(t, b.addr)
	answered, err := c.chat.AnswerQuestion(ctx, &agentdv1.AnswerQuestionRequest{SessionId: sid, Content: "blue"})
	require.NoError(t, err)
	require.Equal(t, run.GetRun().GetId(), answered.GetRunId())
	rest := collect(t, c, ctx, sid, evs[len(evs)-1].GetSequence(), runEnded("completed"))
	run, err = c.chat.GetRun(ctx, &agentdv1.GetRunRequest{SessionId: sid})
	require.NoError(t, err)
	require.Equal(t, "completed", run.GetRun().GetStatus())
	require.False(t, run.GetRun().GetActive())
	require.Equal(t, int32(2), run.GetRun().GetAttempts(), "executed once, resumed once on the new replica")
	require.Positive(t, run.GetRun().GetSessionUsage().GetInputTokens())
	var replied bool
	for _, e := range rest {
		replied = replied || e.GetContent() == "Got it."
	}
	require.True(t, replied, describeEvents(rest))
}

const boundsScript = `
agents:
  mike:
    - tool_calls:
        - {name: sandbox_shell, args: {command: "rm -rf /"}}
    - tool_calls:
        - {name: plan_finish, args: {}}
    - tool_calls:
        - {name: plan_finish, args: {}}
    - tool_calls:
        - {name: plan_finish, args: {}}
    - tool_calls:
        - {name: plan_finish, args: {}}
`

func TestDisallowedToolRefusedAndLoopStopped(t *testing.T) {
	t.Parallel()
	stub, sbAddr := startSandboxStub(t)
	a := startAgentd(t, baseEnv(t, stacktest.SharedRedis(t), sbAddr, boundsScript))
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "loop"})
	require.NoError(t, err)
	evs := collect(t, c, ctx, sid, 0, runEnded("stopped", "completed", "failed"))
	require.Zero(t, stub.execCount(), "the lead may not run commands: nothing was executed")
	var refused bool
	for _, e := range evs {
		refused = refused || (e.GetType() == "error" && e.GetTool() == "sandbox_shell")
	}
	require.True(t, refused, describeEvents(evs))
	last := evs[len(evs)-1]
	require.Equal(t, "stopped", last.GetData().GetFields()["status"].GetStringValue(), describeEvents(evs))
	require.Contains(t, last.GetContent(), "repeated")
}

// A real provider (here OpenAI's wire protocol from an httptest server) drives the lead, and its
// usage is accounted with the configured price; a failing provider surfaces an error event and never
// falls back to a scripted answer.
func TestRealProviderUsageAndFailure(t *testing.T) {
	t.Parallel()
	_, sbAddr := startSandboxStub(t)
	var fail atomic.Bool
	var turns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"message":"model is down","type":"server_error"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta string) string {
			return `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":` + delta + `}]}` + "\n\n"
		}
		var body string
		if turns.Add(1) == 1 {
			body = chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"reply_to_human","arguments":"{\"content\":\"hello from the model\"}"}}]}`)
		} else {
			body = chunk(`{"tool_calls":[{"index":0,"id":"call_2","type":"function","function":{"name":"end","arguments":"{}"}}]}`)
		}
		body += `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1000000,"completion_tokens":500000,"total_tokens":1500000}}` + "\n\ndata: [DONE]\n\n"
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	env := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
	env["AGENTD_LLM_PROVIDER"] = "openai"
	env["OPENAI_API_KEY"] = "sk-test"
	env["OPENAI_BASE_URL"] = srv.URL
	env["AGENTD_LLM_MAX_RETRIES"] = "1"
	env["AGENTD_PRICE_INPUT_PER_MTOK"] = "1"
	env["AGENTD_PRICE_OUTPUT_PER_MTOK"] = "2"
	env["AGENTD_MAX_TOKENS"] = "100000000"
	a := startAgentd(t, env)
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()

	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "hi"})
	require.NoError(t, err)
	evs := collect(t, c, ctx, sid, 0, runEnded("completed"))
	var usage *agentdv1.Event
	for _, e := range evs {
		require.NotContains(t, e.GetContent(), "scripted", "a configured provider never announces the scripted one")
		if e.GetType() == "usage" {
			usage = e
		}
	}
	require.NotNil(t, usage, describeEvents(evs))
	// Two turns of 1M input ($1) + 0.5M output ($1) tokens each.
	require.InDelta(t, 4.0, usage.GetData().GetFields()["run"].GetStructValue().GetFields()["cost_usd"].GetNumberValue(), 1e-9)

	fail.Store(true)
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "again"})
	require.NoError(t, err)
	rest := collect(t, c, ctx, sid, evs[len(evs)-1].GetSequence(), runEnded("failed"))
	last := rest[len(rest)-1]
	require.Equal(t, "error", last.GetType())
	require.Contains(t, last.GetContent(), "model is down")
	for _, e := range rest {
		if e.GetType() == "message" {
			require.Equal(t, "user", e.GetSender(), "no model answer is invented: %s", describeEvents(rest))
		}
	}
	usage = nil
	for _, e := range rest {
		if e.GetType() == "usage" {
			usage = e
		}
	}
	require.NotNil(t, usage)
	require.InDelta(t, 4.0, usage.GetData().GetFields()["session"].GetStructValue().GetFields()["cost_usd"].GetNumberValue(), 1e-9, "the session's cost accumulates over runs")
}

// TestSessionLimitPerUser: a user holds at most AGENTD_MAX_SESSIONS_PER_USER sessions, by either way
// of making one; beyond it the call fails with QUOTA_EXCEEDED and a Retry-After, no sandbox is
// launched for it, other users are untouched, and deleting a session makes room again.
func TestSessionLimitPerUser(t *testing.T) {
	t.Parallel()
	stub, sbAddr := startSandboxStub(t)
	env := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
	env["AGENTD_MAX_SESSIONS_PER_USER"] = "2"
	a := startAgentd(t, env)
	c := dial(t, a.addr)
	alice, bob := as(t, "alice"), as(t, "bob")

	first, err := c.sessions.CreateSession(alice, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	_, err = c.sessions.LaunchSandbox(alice, &agentdv1.LaunchSandboxRequest{Title: "second"})
	require.NoError(t, err)

	stub.mu.Lock()
	launches := len(stub.launched)
	stub.mu.Unlock()
	for name, call := range map[string]func() error{
		"create": func() error {
			_, err := c.sessions.CreateSession(alice, &agentdv1.CreateSessionRequest{})
			return err
		},
		"launch without a session": func() error {
			_, err := c.sessions.LaunchSandbox(alice, &agentdv1.LaunchSandboxRequest{})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
			require.Equal(t, errorsv1.ErrorReason_QUOTA_EXCEEDED, rpcerr.Reason(err))
			info, ok := rpcerr.ErrorInfo(err)
			require.True(t, ok)
			require.Equal(t, "sessions", info.GetMetadata()["quota"])
			require.Equal(t, "2", info.GetMetadata()["limit"])
			require.NotEmpty(t, info.GetMetadata()[rpcerr.MetaRetryAfter])
			require.Contains(t, status.Convert(err).Message(), "at most 2")
		})
	}
	stub.mu.Lock()
	require.Len(t, stub.launched, launches, "no sandbox for a refused session")
	stub.mu.Unlock()
	list, err := c.sessions.ListSessions(alice, &agentdv1.ListSessionsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetSessions(), 2)

	_, err = c.sessions.CreateSession(bob, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err, "the limit is per user")

	_, err = c.sessions.DeleteSession(alice, &agentdv1.DeleteSessionRequest{Id: first.GetSession().GetId()})
	require.NoError(t, err)
	_, err = c.sessions.CreateSession(alice, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err, "a deleted session makes room")
}
