package e2e_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

var urlRE = regexp.MustCompile(`https?://\S+`)

// The default scripted provider drives the team through a real build in a real sandbox: Mike plans
// and delegates, Alex writes index.html and a server, starts it in the background, checks it and gets
// the preview URL, which then serves the page through sandboxd's preview proxy.
func TestScriptedTeamBuildsAWebAppWithPreview(t *testing.T) {
	t.Parallel()
	for _, driver := range []string{"local", "docker"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			port := 3000
			if driver == "local" {
				port = stacktest.Port(t) // local sandboxes share the host's ports
			}
			st := startStack(t, driver, map[string]string{"AGENTD_SCRIPTED_PORT": strconv.Itoa(port)})
			c := dial(t, st.AgentdAddrs[0], st.SandboxdAddr)
			ctx := authn.WithUser(t.Context(), "alice")

			sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{Title: "todo app"})
			require.NoError(t, err)
			sid := sess.GetSession().GetId()
			destroyOnCleanup(t, c, "alice", sid)
			got, err := c.sandbox.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
			require.NoError(t, err, "creating the session provisioned its sandbox")
			require.Equal(t, "alice", got.GetSandbox().GetOwnerId())

			start := time.Now()
			_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "build me a small web app"})
			require.NoError(t, err)
			evs := collect(t, c, ctx, sid, 0, 3*time.Minute, ended("completed", "failed", "stopped"))
			t.Logf("run took %v, %d events", time.Since(start), len(evs))
			require.Equal(t, "completed", runStatus(evs[len(evs)-1]), describe(evs))

			var (
				planned, offlineNotice, wroteIndex, started, checked bool
				previewURL                                           string
			)
			for i, e := range evs {
				require.Equal(t, uint32(i+1), e.GetSequence(), "events in order, no gaps")
				switch {
				case e.GetType() == "plan":
					planned = true
				case e.GetType() == "status" && strings.Contains(e.GetContent(), "scripted offline provider"):
					offlineNotice = true
				case e.GetType() == "file_change" && e.GetAgent() == "Alex" && strings.Contains(strings.Join(e.GetPaths(), ","), "index.html"):
					wroteIndex = true
				case e.GetType() == "tool_result" && e.GetTool() == "process_start":
					started = !e.GetData().GetFields()["is_error"].GetBoolValue()
				case e.GetType() == "tool_result" && e.GetTool() == "sandbox_shell":
					checked = !e.GetData().GetFields()["is_error"].GetBoolValue()
				case e.GetType() == "tool_result" && e.GetTool() == "preview_url" && !e.GetData().GetFields()["is_error"].GetBoolValue():
					previewURL = urlRE.FindString(e.GetContent())
				}
			}
			require.True(t, offlineNotice, "the session says the scripted provider drives it")
			require.True(t, planned, "Mike planned: %s", describe(evs))
			require.True(t, wroteIndex, "Alex wrote index.html: %s", describe(evs))
			require.True(t, started, "Alex started the server: %s", describe(evs))
			require.True(t, checked, "the server answered inside the sandbox: %s", describe(evs))
			require.NotEmpty(t, previewURL, "Alex got the preview URL: %s", describe(evs))

			code, body := fetchPreview(t, st.PreviewAddr, previewURL)
			require.Equal(t, 200, code, body)
			require.Contains(t, body, "Hello from the MGX team", "the preview serves the page Alex wrote")

			file, err := c.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "index.html"})
			require.NoError(t, err)
			require.Contains(t, file.GetContent(), "Hello from the MGX team")

			msgs, err := c.sessions.ListMessages(ctx, &agentdv1.ListMessagesRequest{SessionId: sid})
			require.NoError(t, err)
			var fromLog, fromHistory []string
			for _, e := range evs {
				if e.GetType() == "message" || e.GetType() == "status" || e.GetType() == "error" {
					fromLog = append(fromLog, e.GetMessageId()+"|"+e.GetContent())
				}
			}
			for _, m := range msgs.GetMessages() {
				fromHistory = append(fromHistory, m.GetId()+"|"+m.GetContent())
			}
			require.Equal(t, fromLog, fromHistory, "message history (messages, status and error lines) matches the log")

			_, err = c.sessions.DeleteSession(ctx, &agentdv1.DeleteSessionRequest{Id: sid})
			require.NoError(t, err)
			_, err = c.sandbox.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
			require.Error(t, err, "deleting the session destroyed and forgot its sandbox")
		})
	}
}
