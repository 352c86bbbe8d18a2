package app_test

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/llmtest"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// These tests drive whole runs — and runs after runs — through agentd against a fake
// OpenAI-compatible server whose replies depend on what it is sent, and assert what agentd sends.

// richStub is the sandbox stub with commands whose output tests need: "big step N" prints N and 12 KB
// of output, "poll" says the build is compiling for its first calls and then that it is ready,
// "check" always prints the same thing.
type richStub struct {
	*sandboxStub
	polls  atomic.Int32
	checks atomic.Int32
}

func (s *richStub) Exec(ctx context.Context, r *sandboxdv1.ExecRequest) (*sandboxdv1.ExecResponse, error) {
	cmd := r.GetCommand()
	var out string
	switch {
	case strings.HasPrefix(cmd, "big step "):
		n := strings.TrimPrefix(cmd, "big step ")
		out = "output of step " + n + "\n" + strings.Repeat(fmt.Sprintf("line %s of a long build log\n", n), 400)
	case cmd == "check":
		// The same answer each time, but slower each time, as on a loaded machine: how long a command
		// took is no part of whether its result repeats.
		time.Sleep(time.Duration(s.checks.Add(1)) * 30 * time.Millisecond)
		out = "still the same"
	case cmd == "poll":
		if n := s.polls.Add(1); n < 5 {
			out = fmt.Sprintf("compiling… (%d modules)", n*100)
		} else {
			out = "ready on port 5173"
		}
	default:
		return s.sandboxStub.Exec(ctx, r)
	}
	return &sandboxdv1.ExecResponse{Command: cmd, Stdout: out}, nil
}

func startRichStub(t *testing.T) (*richStub, string) {
	t.Helper()
	stub := &richStub{sandboxStub: newSandboxStub()}
	srv, _, err := grpcserver.New(grpcserver.Options{InternalToken: token, Logger: quietLog()})
	require.NoError(t, err)
	sandboxdv1.RegisterSandboxServiceServer(srv, stub)
	sandboxdv1.RegisterFileServiceServer(srv, stub)
	sandboxdv1.RegisterProcessServiceServer(srv, stub)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return stub, lis.Addr().String()
}

// session is one user's session on an agentd talking to a fake model.
type session struct {
	t   *testing.T
	c   clients
	ctx context.Context
	id  string
	// seq is the sequence of the last event seen.
	seq uint32
}

func newSession(t *testing.T, fake *llmtest.Server, sbAddr string, env map[string]string) *session {
	t.Helper()
	e := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
	for k, v := range fake.Env() {
		e[k] = v
	}
	for k, v := range env {
		e[k] = v
	}
	a := startAgentd(t, e)
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	return &session{t: t, c: c, ctx: ctx, id: sess.GetSession().GetId()}
}

func (s *session) post(text string) *agentdv1.PostMessageResponse {
	s.t.Helper()
	resp, err := s.c.chat.PostMessage(s.ctx, &agentdv1.PostMessageRequest{SessionId: s.id, Content: text})
	require.NoError(s.t, err)
	return resp
}

// until collects the session's events after the last one seen until done.
func (s *session) until(done func([]*agentdv1.Event) bool) []*agentdv1.Event {
	s.t.Helper()
	evs := collect(s.t, s.c, s.ctx, s.id, s.seq, done)
	s.seq = evs[len(evs)-1].GetSequence()
	return evs
}

func (s *session) run(statuses ...string) []*agentdv1.Event {
	s.t.Helper()
	if len(statuses) == 0 {
		statuses = []string{"completed", "stopped", "failed"}
	}
	return s.until(runEnded(statuses...))
}

func lastToolResult(r llmtest.Request) string {
	if m := r.Last(); m.Role == "tool" {
		return m.Content
	}
	return ""
}

// A revision resumes the member's conversation: Alex's second task starts from his first attempt,
// and so does his first task of the next run.
func TestRevisionResumesTheMembersConversation(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := lastToolResult(r)
		switch r.Agent {
		case "mike":
			switch {
			case strings.Contains(last, "alex reports: first version"):
				return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "Revise app.js: add a comment at the top."})
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "app.js is written and commented."})
			case strings.Contains(last, "delivered to the user"):
				return llmtest.Tool("end", map[string]string{"summary": "done"})
			}
			return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "Write app.js printing hello."})
		case "alex":
			revise := strings.Contains(r.LastUser(), "Revise app.js") || strings.Contains(r.LastUser(), "a footer")
			switch {
			case r.Turns() == 0 && revise:
				return llmtest.Tool("file_write", map[string]string{"path": "app.js", "content": "// prints hello\nconsole.log('hello');\n"})
			case r.Turns() == 0:
				return llmtest.Tool("file_write", map[string]string{"path": "app.js", "content": "console.log('hello');\n"})
			case revise:
				return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "revised"})
			}
			return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "first version written"})
		}
		t.Errorf("unexpected request: %s", r.System)
		return llmtest.Say("?")
	})
	s := newSession(t, fake, sbAddr, nil)
	s.post("write me an app")
	evs := s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))

	var second llmtest.Request
	for _, r := range fake.Requests() {
		if r.Agent == "alex" && r.Turns() == 0 && strings.Contains(r.LastUser(), "Revise app.js") {
			second = r
		}
	}
	require.NotNil(t, second.Body, "Alex was given the revision")
	require.True(t, second.Called("file_write"), "Alex's second delegation carries his first attempt")
	require.True(t, second.Contains("console.log('hello');"))
	require.True(t, second.Contains("Write app.js printing hello."), "and the first task")
	require.True(t, second.Contains("Your earlier work in this session is above"))

	// The next run: Alex resumes again, with both earlier tasks.
	from := fake.Count()
	s.post("now add a footer")
	evs = s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	next, ok := fake.First("alex", from)
	require.True(t, ok)
	require.True(t, next.Contains("// prints hello"), "the member's memory outlives the run")
	require.True(t, next.Contains("Revise app.js"))
}

var stepRE = regexp.MustCompile(`output of step (\d+)`)

// A 150-step member task with large tool outputs completes; every request stays within the context
// budget (old outputs masked, the conversation condensed by a model-written summary when it would
// pass it); a context-length error from the provider is followed by a condensed retry, not a failure.
func TestLongRunStaysWithinTheContextBudget(t *testing.T) {
	const steps, budget = 150, 16000
	_, sbAddr := startRichStub(t)
	var alexCalls, rejected atomic.Int32
	var rejectedSize, rejectedAt atomic.Int64
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := lastToolResult(r)
		switch {
		case strings.HasPrefix(r.System, "You condense"):
			return llmtest.Say("GOAL: run the numbered steps.\nDONE: ran the steps so far.\nOPEN: continue with the next step.")
		case r.Agent == "mike":
			switch {
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "All steps ran."})
			case strings.Contains(last, "delivered to the user"):
				return llmtest.Tool("end", map[string]string{"summary": "done"})
			}
			return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": fmt.Sprintf("Run the steps 1 to %d, one command each.", steps)})
		case r.Agent == "alex":
			if alexCalls.Add(1) == 80 {
				rejected.Add(1)
				rejectedSize.Store(int64(r.Tokens()))
				rejectedAt.Store(int64(r.Index))
				return llmtest.ContextLengthExceeded()
			}
			n := 0
			if m := stepRE.FindStringSubmatch(last); m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			if n >= steps {
				return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "all steps ran"})
			}
			return llmtest.Tool("sandbox_shell", map[string]string{"command": fmt.Sprintf("big step %d", n+1)})
		}
		t.Errorf("unexpected request: %.80s", r.System)
		return llmtest.Say("?")
	})
	s := newSession(t, fake, sbAddr, map[string]string{
		"AGENTD_CONTEXT_BUDGET": strconv.Itoa(budget), "AGENTD_KEEP_TOOL_OUTPUTS": "3", "AGENTD_MEMBER_MAX_STEPS": "400",
		"AGENTD_MAX_TOOL_CALLS": "500", "AGENTD_MAX_TOKENS": "100000000",
	})
	s.post("run the steps")
	evs := s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))

	reqs := fake.Requests()
	largest, summaries := 0, 0
	var afterRejection *llmtest.Request
	for i, r := range reqs {
		if strings.HasPrefix(r.System, "You condense") {
			summaries++
			continue
		}
		if r.Agent == "alex" && afterRejection == nil && int64(r.Index) > rejectedAt.Load() && rejected.Load() == 1 {
			afterRejection = &reqs[i]
		}
		largest = max(largest, r.Tokens())
	}
	t.Logf("%d requests, %d summaries, largest %d tokens (budget %d)", len(reqs), summaries, largest, budget)

	require.LessOrEqual(t, largest, budget, "no request passes the context budget")
	require.Positive(t, summaries, "the conversation was condensed by a model-written summary")
	require.Equal(t, int32(1), rejected.Load())
	require.NotNil(t, afterRejection, "the rejected turn was retried")
	require.Less(t, int64(afterRejection.Tokens()), rejectedSize.Load(), "condensed before the retry")
	require.True(t, afterRejection.Contains("This conversation was condensed"))
	require.True(t, afterRejection.Contains(fmt.Sprintf("Run the steps 1 to %d", steps)), "the task stays verbatim")

	var ran int
	for _, e := range evs {
		if e.GetType() == "tool_result" && e.GetTool() == "sandbox_shell" {
			ran++
		}
	}
	require.Equal(t, steps, ran, "every step ran once")
	require.NotNil(t, find(evs, "status", "conversation was condensed"), describeEvents(evs))
}

// A run stopped at its step limit continues with the next message: the model sees the earlier
// conversation, the limits are fresh, and the run completes.
func TestStoppedRunContinues(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := lastToolResult(r)
		switch r.Agent {
		case "mike":
			switch {
			case strings.Contains(r.LastUser(), "The user now writes:\ncontinue") && r.Turns() == 0:
				return llmtest.Tool("plan_update", map[string]string{"task_id": "t1", "status": "done"})
			case strings.Contains(last, "task t1 is done"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "The thing is built."})
			case strings.Contains(last, "delivered to the user"):
				return llmtest.Tool("end", map[string]string{"summary": "built"})
			case strings.Contains(last, "plan now"):
				return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "build the thing"})
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "Alex built it; I'll check it next."})
			}
			return llmtest.Tool("plan_append", map[string]any{"tasks": []map[string]any{{"id": "t1", "title": "Build the thing", "assignee": "alex"}}})
		case "alex":
			if r.Turns() == 0 {
				return llmtest.Tool("file_write", map[string]string{"path": "thing.txt", "content": "the thing"})
			}
			return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "built thing.txt"})
		}
		return llmtest.Say("?")
	})
	s := newSession(t, fake, sbAddr, map[string]string{"AGENTD_MAX_STEPS": "3"})
	first := s.post("build the thing")
	evs := s.run()
	require.Equal(t, "stopped", runStatus(evs), describeEvents(evs))
	require.Contains(t, evs[len(evs)-1].GetContent(), "step limit (3")
	plan, err := s.c.chat.GetPlan(s.ctx, &agentdv1.GetPlanRequest{SessionId: s.id})
	require.NoError(t, err)
	require.Len(t, plan.GetPlan().GetTasks(), 1)
	require.Equal(t, "blocked", plan.GetPlan().GetTasks()[0].GetStatus(), "the task the stopped run worked on is marked")

	from := fake.Count()
	second := s.post("continue")
	require.False(t, second.GetSteered())
	require.NotEqual(t, first.GetRunId(), second.GetRunId())
	evs = s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))

	mike, ok := fake.First("mike", from)
	require.True(t, ok)
	require.True(t, mike.Contains("build the thing"), "the earlier conversation is there")
	require.True(t, mike.Called("plan_append") && mike.Called("send_message"), "with the earlier calls")
	require.True(t, mike.Contains("alex reports: built thing.txt"))
	require.True(t, mike.Contains("continue"))
	require.True(t, mike.Contains("fresh limits"))
	require.NotNil(t, find(evs, "message", "The thing is built."))

	run, err := s.c.chat.GetRun(s.ctx, &agentdv1.GetRunRequest{SessionId: s.id})
	require.NoError(t, err)
	require.Equal(t, first.GetRunId(), run.GetRun().GetResumedFrom())
	plan, err = s.c.chat.GetPlan(s.ctx, &agentdv1.GetPlanRequest{SessionId: s.id})
	require.NoError(t, err)
	require.Equal(t, "done", plan.GetPlan().GetTasks()[0].GetStatus())
	require.Equal(t, second.GetRunId(), plan.GetPlan().GetRunId())
}

// A message posted while a run works is accepted (201 with the active run's id), shown in the
// history, and delivered to the lead at its next turn.
func TestSteeringReachesTheLead(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	asked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := lastToolResult(r)
		switch r.Agent {
		case "mike":
			switch {
			case strings.Contains(last, "alex reports") && r.Contains("also add a footer"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "Built, with the footer you asked for."})
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "Built."})
			case strings.Contains(last, "delivered to the user"):
				return llmtest.Tool("end", map[string]string{"summary": "built"})
			}
			return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "build the page"})
		case "alex":
			once.Do(func() { close(asked) })
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
			return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "page built"})
		}
		return llmtest.Say("?")
	})
	s := newSession(t, fake, sbAddr, nil)
	started := s.post("build the page")
	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		t.Fatal("Alex never started")
	}
	steer := s.post("also add a footer")
	require.True(t, steer.GetSteered())
	require.Equal(t, started.GetRunId(), steer.GetRunId(), "201 with the active run's id")
	close(release)
	evs := s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	require.NotNil(t, find(evs, "message", "Built, with the footer you asked for."), describeEvents(evs))

	var lead llmtest.Request
	for _, r := range fake.Requests() {
		if r.Agent == "mike" && r.Contains("also add a footer") {
			lead = r
			break
		}
	}
	require.NotNil(t, lead.Body, "the lead's next request carries the message")
	require.Equal(t, "user", lead.Last().Role)
	require.Contains(t, lead.Last().Content, "The user wrote while the team was working:\nalso add a footer")

	msgs, err := s.c.sessions.ListMessages(s.ctx, &agentdv1.ListMessagesRequest{SessionId: s.id})
	require.NoError(t, err)
	var inHistory bool
	for _, m := range msgs.GetMessages() {
		inHistory = inHistory || (m.GetSender() == "user" && m.GetContent() == "also add a footer")
	}
	require.True(t, inHistory, "the message is in the history")
}

// The lead cannot end a run silently: it must call a tool (tool_choice "required"); a text-only
// answer is shown and the lead asked once to go on; an end summary nobody saw becomes its message.
func TestLeadCannotEndSilently(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := lastToolResult(r)
		switch r.Agent {
		case "mike":
			switch {
			case r.Turns() == 0 && strings.Contains(r.LastUser(), "build a page"):
				return llmtest.Say("Sure, I'll get Alex on it.")
			case strings.Contains(r.LastUser(), "You answered without calling a tool") && r.Turns() == 0:
				return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "build a page"})
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("end", map[string]string{"summary": "The page is built; open the preview."})
			}
		case "alex":
			return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "page built"})
		}
		t.Errorf("unexpected request of %s: %v", r.Agent, r.Last())
		return llmtest.Say("?")
	})
	s := newSession(t, fake, sbAddr, nil)
	s.post("build a page")
	evs := s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	require.NotNil(t, find(evs, "message", "Sure, I'll get Alex on it."), "the text-only turn is shown")
	end := find(evs, "message", "The page is built; open the preview.")
	require.NotNil(t, end, "the end summary is shown: %s", describeEvents(evs))
	require.Equal(t, "Mike", end.GetAgent())
	for _, r := range fake.Requests() {
		if r.Agent == "mike" {
			require.Equal(t, "required", r.ToolChoice, "the lead must call a tool")
		} else {
			require.Empty(t, r.ToolChoice, "members may answer in text")
		}
	}
}

// depends_on is enforced: a task does not start before its dependency is done. The plan is readable
// after the run.
func TestDependentTaskWaitsAndPlanIsReadable(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := lastToolResult(r)
		switch r.Agent {
		case "mike":
			switch {
			case strings.Contains(last, "plan now"):
				return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "build it"})
			case strings.Contains(last, "not delegated"):
				return llmtest.Tool("send_message", map[string]string{"to": "emma", "content": "write the requirements"})
			case strings.Contains(last, "emma reports"):
				return llmtest.Tool("plan_update", map[string]string{"task_id": "t1", "status": "done"})
			case strings.Contains(last, "task t1 is done"):
				return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "build it from docs/requirements.md"})
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("plan_update", map[string]string{"task_id": "t2", "status": "done"})
			case strings.Contains(last, "task t2 is done"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "Requirements written, app built."})
			case strings.Contains(last, "delivered to the user"):
				return llmtest.Tool("end", map[string]string{})
			}
			return llmtest.Tool("plan_append", map[string]any{"tasks": []map[string]any{
				{"id": "t1", "title": "Write the requirements", "assignee": "emma"},
				{"id": "t2", "title": "Build the app", "assignee": "alex", "depends_on": []string{"t1"}},
			}})
		case "emma":
			if r.Turns() == 0 {
				return llmtest.Tool("file_write", map[string]string{"path": "docs/requirements.md", "content": "# Requirements"})
			}
			return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "docs/requirements.md written"})
		case "alex":
			return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "built"})
		}
		return llmtest.Say("?")
	})
	s := newSession(t, fake, sbAddr, nil)
	s.post("build an app with requirements")
	evs := s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))

	firstEmma, firstAlex := -1, -1
	for _, r := range fake.Requests() {
		if r.Agent == "emma" && firstEmma < 0 {
			firstEmma = r.Index
		}
		if r.Agent == "alex" && firstAlex < 0 {
			firstAlex = r.Index
		}
	}
	require.Positive(t, firstEmma)
	require.Greater(t, firstAlex, firstEmma, "Alex's task waited for Emma's")
	var refusal bool
	for _, r := range fake.Requests() {
		refusal = refusal || (r.Agent == "mike" && strings.Contains(lastToolResult(r), "t2 waits on t1 (in_progress)") ||
			r.Agent == "mike" && strings.Contains(lastToolResult(r), "t2 waits on t1 (todo)"))
	}
	require.True(t, refusal, "the lead was told why")
	t1Done, t2Started := -1, -1
	for i, e := range evs {
		task := e.GetData().GetFields()["task"].GetStructValue().GetFields()
		if e.GetType() != "task" {
			continue
		}
		if task["id"].GetStringValue() == "t1" && task["status"].GetStringValue() == "done" && t1Done < 0 {
			t1Done = i
		}
		if task["id"].GetStringValue() == "t2" && task["status"].GetStringValue() == "in_progress" && t2Started < 0 {
			t2Started = i
		}
	}
	require.Positive(t, t1Done)
	require.Greater(t, t2Started, t1Done, "t2 started after t1 was done")

	plan, err := s.c.chat.GetPlan(s.ctx, &agentdv1.GetPlanRequest{SessionId: s.id})
	require.NoError(t, err)
	got := plan.GetPlan()
	require.Equal(t, s.id, got.GetSessionId())
	require.Len(t, got.GetTasks(), 2)
	require.Equal(t, "done", got.GetTasks()[0].GetStatus())
	require.Equal(t, "done", got.GetTasks()[1].GetStatus())
	require.Equal(t, []string{"t1"}, got.GetTasks()[1].GetDependsOn())
	require.Equal(t, "emma", got.GetTasks()[0].GetAssignee())
	require.NotNil(t, got.GetUpdatedAt())
}

// Repetition is judged on the call and its result: polling a server that is still compiling is not
// a loop; the same call with the same result earns one warning, and then ends only the member's step.
func TestRepetitionIsJudgedOnCallAndResult(t *testing.T) {
	_, sbAddr := startRichStub(t)
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := lastToolResult(r)
		switch r.Agent {
		case "mike":
			switch {
			case strings.Contains(last, "alex reports: ready") && !r.Contains("check the other thing"):
				return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "check the other thing"})
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "Checked."})
			case strings.Contains(last, "delivered to the user"):
				return llmtest.Tool("end", map[string]string{})
			}
			return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "wait until the server is ready"})
		case "alex":
			if strings.Contains(r.LastUser(), "check the other thing") {
				return llmtest.Tool("sandbox_shell", map[string]string{"command": "check"}) // forever the same
			}
			if strings.Contains(lastToolResult(r), "ready on port") {
				return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "ready"})
			}
			return llmtest.Tool("sandbox_shell", map[string]string{"command": "poll"})
		}
		return llmtest.Say("?")
	})
	s := newSession(t, fake, sbAddr, nil)
	s.post("start the server")
	evs := s.run()
	require.Equal(t, "completed", runStatus(evs), "only the member's step stopped: %s", describeEvents(evs))
	var polls, checks int
	for _, e := range evs {
		if e.GetType() == "tool_call" && e.GetTool() == "sandbox_shell" {
			if strings.Contains(e.GetContent(), "poll") {
				polls++
			} else {
				checks++
			}
		}
	}
	require.Equal(t, 5, polls, "changing results are not a repetition")
	require.Equal(t, 4, checks, "three identical results, a warning, one more, and the step ends")
	var warned bool
	for _, r := range fake.Requests() {
		warned = warned || (r.Agent == "alex" && strings.Contains(lastToolResult(r), "WARNING: you made this exact sandbox_shell call"))
	}
	require.True(t, warned, "the model was warned once before anything stopped")
	require.NotNil(t, find(evs, "status", "asked to change its approach"))
	require.NotNil(t, find(evs, "status", "after a warning; its step ends"))
	require.NotNil(t, find(evs, "message", "Checked."), "the run went on with the lead")
}

// A failed run is continued by the next message; when the continued run fails again, the one after
// starts afresh (from the history and the brief) rather than replaying a conversation the provider
// keeps rejecting.
func TestRepeatedFailureStartsAfresh(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		if r.Agent == "mike" && r.Contains("New request from the user:\nthird try") {
			return llmtest.Tool("end", map[string]string{"summary": "Third time lucky."})
		}
		return llmtest.Reply{Status: 400, Error: `{"error":{"message":"Invalid 'messages[3]': unsupported content.","type":"invalid_request_error"}}`}
	})
	s := newSession(t, fake, sbAddr, nil)
	s.post("first try")
	evs := s.run()
	require.Equal(t, "failed", runStatus(evs), describeEvents(evs))
	require.Contains(t, evs[len(evs)-1].GetContent(), "Send a message to continue it")

	from := fake.Count()
	s.post("second try")
	evs = s.run()
	require.Equal(t, "failed", runStatus(evs), describeEvents(evs))
	resumed, ok := fake.First("mike", from)
	require.True(t, ok)
	require.True(t, resumed.Contains("The previous run failed"), "the failed run was continued")
	require.True(t, resumed.Contains("first try"))

	from = fake.Count()
	s.post("third try")
	evs = s.run()
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	fresh, ok := fake.First("mike", from)
	require.True(t, ok)
	require.Len(t, fresh.Messages, 1, "a fresh lead conversation")
	require.True(t, fresh.Contains("[user] first try"), "with the history")
	require.True(t, fresh.Contains("Last run: failed"), "and the brief says how the last run ended")
	require.NotNil(t, find(evs, "message", "Third time lucky."))
}
