package e2e_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/llmtest"
	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// A follow-up knows the project. A model (a fake OpenAI-compatible server answering by what it is
// sent) has the team build a page in a real sandbox — index.html written, a server started in the
// background, its preview URL fetched — then the user asks "make the header blue". The first
// requests of run 2, Mike's and Alex's, carry the original request, the file tree with run 1's
// files, the running process and its port, and the preview URL; Alex edits the page and the
// preview serves the change.
func TestFollowUpKnowsTheProject(t *testing.T) {
	port := stacktest.Port(t)
	const original = "Build a landing page with a header that says Welcome."

	var (
		mu                 sync.Mutex
		mikeRun2, alexRun2 llmtest.Request
	)
	fake := llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		last := ""
		if m := r.Last(); m.Role == "tool" {
			last = m.Content
		}
		task := r.LastUser()
		switch r.Agent {
		case "mike":
			switch {
			case strings.Contains(last, "alex reports"):
				return llmtest.Tool("reply_to_human", map[string]string{"content": "Done: " + strings.TrimPrefix(last, "alex reports: ")})
			case strings.Contains(last, "delivered to the user"):
				return llmtest.Tool("end", map[string]string{})
			case r.Turns() == 0 && strings.Contains(task, "make the header blue"):
				mu.Lock()
				mikeRun2 = r
				mu.Unlock()
				return llmtest.Tool("send_message", map[string]string{"to": "alex", "content": "Make the header of index.html blue; the server already running picks the change up."})
			case r.Turns() == 0:
				return llmtest.Tool("send_message", map[string]string{"to": "alex",
					"content": fmt.Sprintf("Build index.html with a header saying Welcome, serve it in the background on port %d and get its preview URL.", port)})
			}
		case "alex":
			if strings.Contains(task, "Make the header of index.html blue") {
				switch r.Turns() {
				case 0:
					mu.Lock()
					alexRun2 = r
					mu.Unlock()
					return llmtest.Tool("file_write", map[string]string{"path": "index.html",
						"content": `<!doctype html><html><body><h1 style="color: blue">Welcome</h1></body></html>`})
				default:
					return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "The header is blue now."})
				}
			}
			switch r.Turns() {
			case 0:
				return llmtest.Tool("file_write", map[string]string{"path": "index.html",
					"content": `<!doctype html><html><body><h1 style="color: black">Welcome</h1></body></html>`})
			case 1:
				return llmtest.Tool("process_start", map[string]string{"name": "web", "command": fmt.Sprintf("busybox httpd -f -p %d -h .", port)})
			case 2:
				return llmtest.Tool("preview_url", map[string]int{"port": port})
			default:
				return llmtest.Tool("send_message", map[string]string{"to": "mike", "content": "index.html is served by web on port " + fmt.Sprint(port)})
			}
		}
		t.Errorf("unexpected request of %q: %.200s", r.Agent, r.LastUser())
		return llmtest.Say("?")
	})
	env := fake.Env()
	env["AGENTD_LEAD_TOOL_CHOICE"] = "true"
	st := startStack(t, "local", env)
	c := dial(t, st.AgentdAddrs[0], st.SandboxdAddr)
	ctx := authn.WithUser(t.Context(), "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{Title: "landing page"})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	destroyOnCleanup(t, c, "alice", sid)

	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: original})
	require.NoError(t, err)
	run1 := collect(t, c, ctx, sid, 0, 2*time.Minute, ended("completed", "failed", "stopped"))
	require.Equal(t, "completed", runStatus(run1[len(run1)-1]), describe(run1))
	var previewURL string
	for _, e := range run1 {
		if e.GetType() == "tool_result" && e.GetTool() == "preview_url" && !e.GetData().GetFields()["is_error"].GetBoolValue() {
			previewURL = urlRE.FindString(e.GetContent())
		}
	}
	require.NotEmpty(t, previewURL, describe(run1))
	code, body := fetchPreview(t, st.PreviewAddr, previewURL)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, "color: black")
	// The URL as the brief names it: the preview's address (its token may be issued anew).
	previewBase, _, _ := strings.Cut(previewURL, "?")

	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "Now make the header blue, please."})
	require.NoError(t, err)
	run2 := collect(t, c, ctx, sid, run1[len(run1)-1].GetSequence(), 2*time.Minute, ended("completed", "failed", "stopped"))
	require.Equal(t, "completed", runStatus(run2[len(run2)-1]), describe(run2))

	mu.Lock()
	defer mu.Unlock()
	for who, r := range map[string]llmtest.Request{"Mike": mikeRun2, "Alex": alexRun2} {
		require.NotNil(t, r.Body, "%s was asked in run 2", who)
		first := r.Messages[len(r.Messages)-1].Content // the new request or task, with the brief
		t.Logf("%s's first request of run 2 ends with:\n%s", who, first)
		for what, want := range map[string]string{
			"the original request":   original,
			"the file tree":          "index.html (",
			"the running process":    "web — running",
			"the process's port":     fmt.Sprintf("port %d", port),
			"the preview URL":        previewBase,
			"the follow-up request":  "make the header blue",
			"the last run's outcome": "Last run: completed",
		} {
			require.Contains(t, first, want, "%s's first request of run 2 carries %s:\n%s", who, what, first)
		}
	}
	require.True(t, alexRun2.Called("process_start"), "Alex's memory of run 1 is in his conversation")

	// The running server picks the edit up: the preview shows the blue header.
	require.Eventually(t, func() bool {
		code, body := fetchPreview(t, st.PreviewAddr, previewURL)
		return code == 200 && strings.Contains(body, "color: blue")
	}, 30*time.Second, 200*time.Millisecond)
}
