package e2e_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// The offline journey of `make run`: the scripted provider builds the app with an edit, a search, a
// process listing and a browser check whose screenshot the user can open; a second message changes
// that app — an edit the running server serves at once — instead of building it again.
func TestScriptedJourneyBuildsThenChangesTheApp(t *testing.T) {
	requireChromium(t)
	port := stacktest.Port(t)
	s := startToolStack(t, nil, stackOptions{gateway: true, env: map[string]string{
		"AGENTD_LLM_PROVIDER": "scripted", "AGENTD_SCRIPTED_PORT": strconv.Itoa(port),
	}})
	owner := s.registerREST(t, "journey@example.com")
	sid := s.createSessionREST(t, owner)

	first := s.run(t, owner.id, sid, "build me a small web page")
	tools := func(evs []*agentdv1.Event) string {
		var out []string
		for _, e := range evs {
			if e.GetType() == "tool_call" && strings.EqualFold(e.GetAgent(), "alex") {
				out = append(out, e.GetTool())
			}
		}
		return strings.Join(out, ",")
	}
	require.Equal(t, "file_list,file_write,file_write,file_write,file_write,file_edit,file_search,process_start,sandbox_shell,process_list,preview_check,preview_url,send_message",
		tools(first), describe(first))
	for _, tool := range []string{"file_edit", "file_search", "process_start", "sandbox_shell", "process_list", "preview_check", "preview_url"} {
		e := resultEvent(t, first, callID(callsOf(first, tool)[0]))
		require.False(t, isError(e), "%s: %s", tool, e.GetContent())
	}
	search := resultEvent(t, first, callID(callsOf(first, "file_search")[0])).GetContent()
	require.Contains(t, search, "server.js:2:")
	require.Contains(t, search, "start.sh:")
	check := resultEvent(t, first, callID(callsOf(first, "preview_check")[0])).GetContent()
	require.Contains(t, check, "HTTP status: 200")
	require.Contains(t, check, "Hello from the MGX team")
	require.Contains(t, check, "Made offline by the MGX team.", "the edit is on the page")
	listed := resultEvent(t, first, callID(callsOf(first, "process_list")[0])).GetContent()
	require.Contains(t, listed, "web: running")
	require.Contains(t, listed, "listening on "+strconv.Itoa(port))
	var usage string
	for _, e := range first {
		if e.GetType() == "usage" {
			usage = e.GetContent()
		}
	}
	require.Contains(t, usage, "estimated", "the scripted provider's usage is labelled as estimated")

	second := s.run(t, owner.id, sid, "make the heading <b>bigger</b>")
	require.Equal(t, "file_list,file_search,file_edit,process_list,preview_check,preview_url,send_message", tools(second),
		"the second message edits the app instead of building it again: %s", describe(second))
	edit := resultEvent(t, second, callID(callsOf(second, "file_edit")[0]))
	require.False(t, isError(edit), edit.GetContent())
	require.Equal(t, []string{"index.html"}, changedPaths(second, callID(callsOf(second, "file_edit")[0])))
	check = resultEvent(t, second, callID(callsOf(second, "preview_check")[0])).GetContent()
	require.Contains(t, check, "Updated on request: make the heading <b>bigger</b>", "the running server serves the change: %s", check)
	var reply string
	for _, e := range second {
		if e.GetType() == "message" && strings.EqualFold(e.GetAgent(), "mike") {
			reply = e.GetContent()
		}
	}
	require.Contains(t, reply, "changed the app you already have")
	page := s.read(t, owner.id, sid, "index.html")
	require.Equal(t, 1, strings.Count(page, "<h1>Hello from the MGX team</h1>"), "not rebuilt")
	require.Contains(t, page, `<p class="update">Updated on request: make the heading &lt;b&gt;bigger&lt;/b&gt;</p>`)

	// Both checks' screenshots are the session's artifacts, which its owner opens through the API.
	list := s.getREST(t, owner, "/api/sessions/"+sid+"/artifacts")
	require.Equal(t, http.StatusOK, list.status, list.body)
	require.Equal(t, 2, strings.Count(list.body, `"content_type":"image/png"`), list.body)
	for _, evs := range [][]*agentdv1.Event{first, second} {
		var url string
		for _, e := range evs {
			if e.GetType() == "artifact" {
				url = e.GetData().GetFields()["url"].GetStringValue()
			}
		}
		require.NotEmpty(t, url, describe(evs))
		got := s.getREST(t, owner, url)
		require.Equal(t, http.StatusOK, got.status)
		require.True(t, bytes.HasPrefix([]byte(got.body), []byte("\x89PNG\r\n\x1a\n")))
	}
}
