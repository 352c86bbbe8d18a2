package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// The tools, end to end: a real sandboxd (local driver) and agentd, a real Redis, the model faked at
// the HTTP wire. Each test asserts what the runtime sent the model and what the user's event stream
// carried.

// toolStack is sandboxd, agentd on the fake model, and optionally the gateway in front.
type toolStack struct {
	st         *stacktest.Stack
	c          clients
	model      *fakeModel
	agentdAddr string
	gatewayURL string
}

type stackOptions struct {
	gateway bool
	env     map[string]string // agentd's, beside the defaults
}

func startToolStack(t *testing.T, brains map[string]brain, o stackOptions) *toolStack {
	t.Helper()
	s := &toolStack{model: startFakeModel(t, brains)}
	env := map[string]string{
		"AGENTD_LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": s.model.URL, "AGENTD_MODEL": "gpt-4o",
		"AGENTD_REPEAT_LIMIT": "10",
	}
	maps.Copy(env, o.env)
	s.st = stacktest.StartStack(t, stacktest.Spec{Driver: "local", NoGateway: !o.gateway, AgentdEnv: env})
	s.agentdAddr = s.st.AgentdAddrs[0]
	s.c = dial(t, s.agentdAddr, s.st.SandboxdAddr)
	if o.gateway {
		s.gatewayURL = s.st.URL()
	}
	return s
}

// session creates a session of owner (whose sandbox is destroyed when the test ends).
func (s *toolStack) session(t *testing.T, owner string) string {
	t.Helper()
	ctx := authn.WithUser(t.Context(), owner)
	sess, err := s.c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{Title: t.Name()})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	destroyOnCleanup(t, s.c, owner, sid)
	return sid
}

// run posts prompt and returns the run's events, from the first after the events already there.
func (s *toolStack) run(t *testing.T, owner, sid, prompt string) []*agentdv1.Event {
	t.Helper()
	ctx := authn.WithUser(t.Context(), owner)
	after := uint32(0)
	before := collectAll(t, s.c, ctx, sid)
	if len(before) > 0 {
		after = before[len(before)-1].GetSequence()
	}
	_, err := s.c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: prompt})
	require.NoError(t, err)
	evs := collect(t, s.c, ctx, sid, after, 3*time.Minute, ended("completed", "failed", "stopped"))
	require.Equal(t, "completed", runStatus(evs[len(evs)-1]), describe(evs))
	return evs
}

// collectAll returns the events already in the session's log.
func collectAll(t *testing.T, c clients, ctx context.Context, sid string) []*agentdv1.Event {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := c.events.StreamEvents(ctx, &agentdv1.StreamEventsRequest{SessionId: sid})
	require.NoError(t, err)
	var out []*agentdv1.Event
	for {
		r, err := st.Recv()
		if err != nil {
			return out
		}
		out = append(out, r.GetEvent())
	}
}

func (s *toolStack) write(t *testing.T, owner, sid, path, content string) {
	t.Helper()
	_, err := s.c.files.WriteFile(authn.WithUser(t.Context(), owner), &sandboxdv1.WriteFileRequest{SessionId: sid, Path: path, Content: content})
	require.NoError(t, err)
}

func (s *toolStack) read(t *testing.T, owner, sid, path string) string {
	t.Helper()
	f, err := s.c.files.ReadFile(authn.WithUser(t.Context(), owner), &sandboxdv1.ReadFileRequest{SessionId: sid, Path: path})
	require.NoError(t, err)
	return f.GetContent()
}

// callsOf lists the tool_call events of a tool, in order.
func callsOf(evs []*agentdv1.Event, tool string) []*agentdv1.Event {
	var out []*agentdv1.Event
	for _, e := range evs {
		if e.GetType() == "tool_call" && e.GetTool() == tool {
			out = append(out, e)
		}
	}
	return out
}

func callID(e *agentdv1.Event) string { return e.GetData().GetFields()["call_id"].GetStringValue() }

// resultEvent is the tool_result event of a call.
func resultEvent(t *testing.T, evs []*agentdv1.Event, id string) *agentdv1.Event {
	t.Helper()
	for _, e := range evs {
		if e.GetType() == "tool_result" && callID(e) == id {
			return e
		}
	}
	t.Fatalf("no tool_result for call %s: %s", id, describe(evs))
	return nil
}

func isError(e *agentdv1.Event) bool { return e.GetData().GetFields()["is_error"].GetBoolValue() }

// sentResult is the result of a call as the runtime sent it to the model.
func (s *toolStack) sentResult(t *testing.T, evs []*agentdv1.Event, tool string, n int) (string, *agentdv1.Event) {
	t.Helper()
	calls := callsOf(evs, tool)
	require.Greater(t, len(calls), n, "%s call #%d: %s", tool, n, describe(evs))
	id := callID(calls[n])
	out, ok := s.model.resultOf(id)
	require.True(t, ok, "the model received the result of %s", id)
	return out, resultEvent(t, evs, id)
}

// changedPaths gathers the paths of the file_change events of a call.
func changedPaths(evs []*agentdv1.Event, id string) []string {
	var out []string
	for _, e := range evs {
		if e.GetType() == "file_change" && callID(e) == id {
			out = append(out, e.GetPaths()...)
		}
	}
	return out
}

// A 200 KB file is paged with file_read and changed by three file_edits; every byte the edits did not
// touch is unchanged. An ambiguous and a missing match are observations the model can act on, not
// failures of the run.
func TestLargeFileIsPagedAndEdited(t *testing.T) {
	var lines []string
	for i := 1; i <= 3000; i++ {
		switch i {
		case 100:
			lines = append(lines, "const alpha = 'MARKER_A';")
		case 1500:
			lines = append(lines, "const beta = 'MARKER_B';")
		case 2950:
			lines = append(lines, "const gamma = 'MARKER_C';")
		case 700, 2200:
			lines = append(lines, "// TWICE: this line occurs twice")
		default:
			lines = append(lines, fmt.Sprintf("line %04d: the quick brown fox jumps over the lazy dog, then naps %04d", i, i*7%10000))
		}
	}
	original := strings.Join(lines, "\n") + "\n"
	require.Greater(t, len(original), 200<<10)

	s := startToolStack(t, map[string]brain{
		"mike": delegate("alex", "edit big.js"),
		"alex": steps(
			do("file_read", map[string]any{"path": "big.js", "limit": 200}),
			do("file_read", map[string]any{"path": "/workspace/big.js", "offset": 2901}),
			do("file_edit", map[string]any{"path": "big.js", "old_str": "'MARKER_A'", "new_str": "'EDITED_A'"}),
			do("file_edit", map[string]any{"path": "big.js", "old_str": "const beta = 'MARKER_B';\n", "new_str": "const beta = 'EDITED_B';\nconst betaTwo = 2;\n"}),
			do("file_insert", map[string]any{"path": "big.js", "line": 2951, "text": "// inserted after gamma"}),
			do("file_edit", map[string]any{"path": "big.js", "old_str": "'MARKER_C'", "new_str": "'EDITED_C'"}),
			do("file_edit", map[string]any{"path": "big.js", "old_str": "// TWICE: this line occurs twice", "new_str": "// once"}),
			do("file_edit", map[string]any{"path": "big.js", "old_str": "const delta = 'MARKER_D';", "new_str": "x"}),
			do("file_search", map[string]any{"pattern": "EDITED_[ABC]", "glob": "*.js"}),
		),
	}, stackOptions{})
	sid := s.session(t, "alice")
	s.write(t, "alice", sid, "big.js", original)
	evs := s.run(t, "alice", sid, "edit big.js")

	t.Run("paged reads", func(t *testing.T) {
		out, _ := s.sentResult(t, evs, "file_read", 0)
		require.Contains(t, out, "big.js: lines 1–200 of 3000")
		require.Contains(t, out, "     1\tline 0001: the quick brown fox")
		require.Contains(t, out, "   100\tconst alpha = 'MARKER_A';")
		require.Contains(t, out, "call file_read with offset=201 to continue")
		require.NotContains(t, out, "line 0201")
		require.Less(t, len(out), 20<<10)

		out, _ = s.sentResult(t, evs, "file_read", 1)
		require.Contains(t, out, "big.js: lines 2901–3000 of 3000")
		require.Contains(t, out, "  2950\tconst gamma = 'MARKER_C';")
		require.NotContains(t, out, "to continue", "the last page says nothing more follows")
	})
	t.Run("edits report the edited lines", func(t *testing.T) {
		out, ev := s.sentResult(t, evs, "file_edit", 0)
		require.False(t, isError(ev))
		require.Contains(t, out, "edited big.js: replaced 1 occurrence")
		require.Contains(t, out, "   100\tconst alpha = 'EDITED_A';")
		require.Equal(t, []string{"big.js"}, changedPaths(evs, callID(callsOf(evs, "file_edit")[0])), "an edit is a file_change")
		out, _ = s.sentResult(t, evs, "file_insert", 0)
		require.Contains(t, out, "inserted 1 line after line 2951", "gamma moved down a line with the second edit")
		require.Contains(t, out, "// inserted after gamma")
	})
	t.Run("ambiguous and missing matches are observations", func(t *testing.T) {
		out, ev := s.sentResult(t, evs, "file_edit", 3)
		require.True(t, isError(ev))
		require.Contains(t, out, "occurs 2 times in big.js (at lines 700, 2201)")
		require.Contains(t, out, "replace_all")
		out, ev = s.sentResult(t, evs, "file_edit", 4)
		require.True(t, isError(ev))
		require.Contains(t, out, "old_str was not found in big.js")
		out, _ = s.sentResult(t, evs, "file_search", 0)
		require.Contains(t, out, "3 matches in 1 file")
		require.Contains(t, out, "big.js:100: const alpha = 'EDITED_A';")
	})
	t.Run("untouched bytes are identical", func(t *testing.T) {
		got := s.read(t, "alice", sid, "big.js")
		// Cut both files at the edits; every region between them must hash the same.
		cut := func(s string, seps ...string) []string {
			var parts []string
			for _, sep := range seps {
				i := strings.Index(s, sep)
				require.GreaterOrEqual(t, i, 0, "%q", sep)
				parts = append(parts, s[:i])
				s = s[i+len(sep):]
			}
			return append(parts, s)
		}
		before := cut(original, "'MARKER_A'", "const beta = 'MARKER_B';\n", "'MARKER_C';\n")
		after := cut(got, "'EDITED_A'", "const beta = 'EDITED_B';\nconst betaTwo = 2;\n", "'EDITED_C';\n// inserted after gamma\n")
		require.Len(t, after, len(before))
		for i := range before {
			require.Equal(t, sha256.Sum256([]byte(before[i])), sha256.Sum256([]byte(after[i])), "region %d changed", i)
		}
		require.Equal(t, len(original)-len("'MARKER_A'")+len("'EDITED_A'")+len("const betaTwo = 2;\n")+len("// inserted after gamma\n"), len(got))
	})
}

// A command printing 100 KB of stdout, pausing, then failing on stderr: the model gets the stderr
// line and the end of the output, the user watched the output arrive before the command ended; and
// sed -i and a command creating a directory of files are announced as file_change events.
func TestShellOutputStreamsAndChangesAreSeen(t *testing.T) {
	const loud = `i=0; while [ $i -lt 1600 ]; do printf 'build step %04d: compiling module with a fairly long line of log output here\n' $i; i=$((i+1)); done; sleep 2; echo 'error TS2304: Cannot find name "widget".' >&2; exit 2`
	s := startToolStack(t, map[string]brain{
		"mike": delegate("alex", "build it"),
		"alex": steps(
			do("sandbox_shell", map[string]any{"command": loud}),
			do("sandbox_shell", map[string]any{"command": "sed -i 's/draft/final/' notes.txt && mkdir -p site/pages && for p in a b c; do echo \"<h1>$p</h1>\" > site/pages/$p.html; done"}),
			do("sandbox_shell", map[string]any{"command": "rm site/pages/b.html && echo gone"}),
			do("sandbox_shell", map[string]any{"command": "echo started; sleep 30", "timeout": 1}),
		),
	}, stackOptions{})
	sid := s.session(t, "alice")
	s.write(t, "alice", sid, "notes.txt", "status: draft\n")
	evs := s.run(t, "alice", sid, "build it")

	t.Run("the model sees stderr and the end of stdout", func(t *testing.T) {
		out, ev := s.sentResult(t, evs, "sandbox_shell", 0)
		require.True(t, isError(ev))
		require.Contains(t, out, "exit code: 2")
		require.Contains(t, out, `error TS2304: Cannot find name "widget".`)
		require.Contains(t, out, "build step 1599:", "the end of stdout is kept")
		require.Contains(t, out, "build step 0000:", "and its beginning")
		require.Contains(t, out, "bytes cut from the middle")
		require.NotContains(t, out, "build step 0800:")
		require.Less(t, len(out), 24<<10)
	})
	t.Run("the user saw the output live", func(t *testing.T) {
		id := callID(callsOf(evs, "sandbox_shell")[0])
		end := resultEvent(t, evs, id).GetTimestamp().AsTime()
		var pieces, early int
		var streamed strings.Builder
		for _, e := range evs {
			if e.GetType() != "tool_output" || callID(e) != id {
				continue
			}
			pieces++
			if e.GetData().GetFields()["stream"].GetStringValue() == "stdout" {
				streamed.WriteString(e.GetContent())
			}
			// The command sleeps 2 s after its output: pieces sent before that reached the user
			// before the command ended.
			if e.GetTimestamp().AsTime().Before(end.Add(-time.Second)) {
				early++
			}
		}
		require.Greater(t, pieces, 2, "output arrives in pieces")
		require.Greater(t, early, 1, "pieces arrived before the command ended")
		require.Equal(t, 1600, strings.Count(streamed.String(), "build step"), "the user saw all of stdout")
	})
	t.Run("shell changes are file_change events", func(t *testing.T) {
		id := callID(callsOf(evs, "sandbox_shell")[1])
		paths := changedPaths(evs, id)
		require.Subset(t, paths, []string{"notes.txt", "site", "site/pages", "site/pages/a.html", "site/pages/b.html", "site/pages/c.html"}, "%v", paths)
		require.Equal(t, "status: final\n", s.read(t, "alice", sid, "notes.txt"))
		require.Equal(t, []string{"site/pages/b.html"}, changedPaths(evs, callID(callsOf(evs, "sandbox_shell")[2])), "a deletion is a change too")
	})
	t.Run("each step that changed files is a checkpoint", func(t *testing.T) {
		checkpointOf := func(id string) *agentdv1.Event {
			var found *agentdv1.Event
			for _, e := range evs {
				if e.GetType() == "checkpoint" && callID(e) == id {
					require.Nil(t, found, "one checkpoint per step")
					found = e
				}
			}
			return found
		}
		calls := callsOf(evs, "sandbox_shell")
		require.Nil(t, checkpointOf(callID(calls[3])), "a step that changed no file is no checkpoint")
		edit, rm := checkpointOf(callID(calls[1])), checkpointOf(callID(calls[2]))
		require.NotNil(t, edit)
		require.NotNil(t, rm)
		require.Equal(t, "Alex", edit.GetAgent())
		editID := edit.GetData().GetFields()["checkpoint_id"].GetStringValue()
		require.Equal(t, editID, rm.GetData().GetFields()["parent_id"].GetStringValue())
		require.EqualValues(t, 1, rm.GetData().GetFields()["files_changed"].GetNumberValue())
		// The checkpoint is the sandbox's: listed with the run and step, and its diff is the step's.
		ctx := authn.WithUser(t.Context(), "alice")
		l, err := s.c.ws.ListCheckpoints(ctx, &sandboxdv1.ListCheckpointsRequest{SessionId: sid})
		require.NoError(t, err)
		var step *sandboxdv1.Checkpoint
		for _, c := range l.GetCheckpoints() {
			if c.GetId() == editID {
				step = c
			}
		}
		require.NotNil(t, step)
		require.Equal(t, "step", step.GetKind())
		require.Equal(t, callID(calls[1]), step.GetStep())
		require.NotEmpty(t, step.GetRunId())
		d, err := s.c.ws.DiffCheckpoint(ctx, &sandboxdv1.DiffCheckpointRequest{SessionId: sid, CheckpointId: editID,
			Against: rm.GetData().GetFields()["checkpoint_id"].GetStringValue()})
		require.NoError(t, err)
		require.Len(t, d.GetFiles(), 1)
		require.Equal(t, "deleted", d.GetFiles()[0].GetStatus())
		require.Equal(t, "site/pages/b.html", d.GetFiles()[0].GetPath())
	})
	t.Run("a command past its timeout is killed and says so", func(t *testing.T) {
		out, ev := s.sentResult(t, evs, "sandbox_shell", 3)
		require.True(t, isError(ev))
		require.Contains(t, out, "timed out after 1")
		require.Contains(t, out, "and was killed")
		require.Contains(t, out, "started", "what it printed before is kept")
	})
}

// preview_check loads pages through sandboxd's preview listener in the shared chromium: one that
// renders, one that throws, a 404. Each screenshot is an artifact its owner downloads through the
// REST API, and nobody else can.
func TestPreviewCheckReportsPagesAndKeepsScreenshots(t *testing.T) {
	requireChromium(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("the local sandbox serves the pages with python3, which is not installed")
	}
	port := stacktest.Port(t)
	s := startToolStack(t, map[string]brain{
		"mike": delegate("alex", "check the app"),
		"alex": steps(
			do("process_start", map[string]any{"name": "web", "command": fmt.Sprintf("python3 -m http.server %d --bind 127.0.0.1", port)}),
			do("process_list", map[string]any{}),
			do("preview_check", map[string]any{"port": port, "path": "/ok.html"}),
			do("preview_check", map[string]any{"port": port, "path": "/broken.html", "wait_ms": 200}),
			do("preview_check", map[string]any{"port": port, "path": "/missing.html"}),
			do("process_logs", map[string]any{"name": "web", "tail": 20}),
		),
	}, stackOptions{gateway: true})
	owner := s.registerREST(t, "owner@example.com")
	other := s.registerREST(t, "other@example.com")
	sid := s.createSessionREST(t, owner)
	s.write(t, owner.id, sid, "ok.html", `<!doctype html><html><head><title>Todo list</title></head><body><h1>My todos</h1><ul><li>write tests</li></ul></body></html>`)
	s.write(t, owner.id, sid, "broken.html", `<!doctype html><html><head><title>Broken</title></head><body><div id="app"></div>
<script>console.error("failed to mount: no #root element"); throw new Error("kaboom: render crashed");</script></body></html>`)
	evs := s.run(t, owner.id, sid, "check the app")

	out, _ := s.sentResult(t, evs, "process_list", 0)
	require.Contains(t, out, "web: running (pid")
	require.Contains(t, out, fmt.Sprintf("listening on %d (preview http", port))

	ok, okEv := s.sentResult(t, evs, "preview_check", 0)
	require.False(t, isError(okEv), ok)
	require.Contains(t, ok, "HTTP status: 200")
	require.Contains(t, ok, "Title: Todo list")
	require.Contains(t, ok, "My todos")
	require.NotContains(t, ok, "Uncaught exceptions")
	require.NotRegexp(t, `token=[^…]`, ok, "the preview token is masked")

	broken, brokenEv := s.sentResult(t, evs, "preview_check", 1)
	require.True(t, isError(brokenEv))
	require.Contains(t, broken, "kaboom: render crashed")
	require.Contains(t, broken, "failed to mount: no #root element")

	missing, missingEv := s.sentResult(t, evs, "preview_check", 2)
	require.True(t, isError(missingEv))
	require.Contains(t, missing, "HTTP status: 404")

	logs, _ := s.sentResult(t, evs, "process_logs", 0)
	require.Contains(t, logs, "GET /ok.html")
	require.Regexp(t, `Next: process_logs name="web" since=\d+`, logs)

	var artifacts []*agentdv1.Event
	for _, e := range evs {
		if e.GetType() == "artifact" {
			artifacts = append(artifacts, e)
		}
	}
	require.Len(t, artifacts, 3, "one screenshot per check: %s", describe(evs))
	list := s.getREST(t, owner, "/api/sessions/"+sid+"/artifacts")
	require.Equal(t, http.StatusOK, list.status, list.body)
	var listed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list.body), &listed))
	require.Len(t, listed, 3)
	for _, a := range artifacts {
		f := a.GetData().GetFields()
		url := f["url"].GetStringValue()
		require.Equal(t, "/api/sessions/"+sid+"/artifacts/"+f["artifact_id"].GetStringValue(), url)
		require.Equal(t, "image/png", f["content_type"].GetStringValue())
		got := s.getREST(t, owner, url)
		require.Equal(t, http.StatusOK, got.status)
		require.Equal(t, "image/png", got.header.Get("Content-Type"))
		require.True(t, bytes.HasPrefix([]byte(got.body), []byte("\x89PNG\r\n\x1a\n")), "a PNG")
		require.Greater(t, len(got.body), 1000)
		require.EqualValues(t, len(got.body), f["size"].GetNumberValue())

		require.Equal(t, http.StatusNotFound, s.getREST(t, other, url).status, "another user cannot download it")
	}
	require.Equal(t, http.StatusNotFound, s.getREST(t, other, "/api/sessions/"+sid+"/artifacts").status)
	require.Equal(t, http.StatusNotFound, s.getREST(t, owner, "/api/sessions/"+sid+"/artifacts/00000000-0000-4000-8000-000000000000").status)
	require.Equal(t, http.StatusBadRequest, s.getREST(t, owner, "/api/sessions/"+sid+"/artifacts/not-a-uuid").status)
}

// requireChromium skips a test that needs the browser where there is none (never in CI).
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/chromium"); err != nil {
		if stacktest.CI() {
			t.Fatal("CI=true: chromium is required (Debian's chromium package)")
		}
		t.Skip("chromium is not installed")
	}
}

// restUser is a user of the gateway.
type restUser struct {
	id, token string
}

type restResponse struct {
	status int
	header http.Header
	body   string
}

func (s *toolStack) rest(t *testing.T, u restUser, method, path string, body any) restResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.gatewayURL+path, rd)
	require.NoError(t, err)
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return restResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (s *toolStack) getREST(t *testing.T, u restUser, path string) restResponse {
	return s.rest(t, u, http.MethodGet, path, nil)
}

func (s *toolStack) registerREST(t *testing.T, email string) restUser {
	t.Helper()
	r := s.rest(t, restUser{}, http.MethodPost, "/api/auth/register", map[string]any{"email": email, "password": "a-long-enough-password"})
	require.Equal(t, http.StatusCreated, r.status, r.body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &tok))
	u := restUser{token: tok.AccessToken}
	me := s.getREST(t, u, "/api/auth/me")
	require.Equal(t, http.StatusOK, me.status, me.body)
	var m struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(me.body), &m))
	u.id = m.ID
	return u
}

func (s *toolStack) createSessionREST(t *testing.T, u restUser) string {
	t.Helper()
	r := s.rest(t, u, http.MethodPost, "/api/sessions", map[string]any{"title": t.Name()})
	require.Equal(t, http.StatusCreated, r.status, r.body)
	var sess struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &sess))
	destroyOnCleanup(t, s.c, u.id, sess.ID)
	return sess.ID
}
