package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Streamed routes answer errors as every other route does: the status of the error's reason and the
// one error body. A stream that fails before its first chunk gets an ordinary error answer; one that
// fails after it ends with a chunk {"error": <the error body>}.
func TestStreamedErrorsShareTheFunnel(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("streams@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)

	t.Run("a timeout before any output is 408, like unary exec", func(t *testing.T) {
		for _, path := range []string{"/api/sandbox/exec", "/api/sandbox/exec/stream"} {
			r := s.do(req{method: "POST", path: path, token: a.access, body: map[string]any{
				"session_id": id, "command": "sleep 30", "timeout": 1,
			}})
			m := requireError(t, r, http.StatusRequestTimeout)
			require.Equal(t, "EXEC_TIMEOUT", m["reason"], "%s: %s", path, r.body)
			require.Equal(t, "DEADLINE_EXCEEDED", m["code"], "%s: %s", path, r.body)
		}
	})
	t.Run("a timeout after output ends the stream with an error chunk", func(t *testing.T) {
		r := s.do(req{method: "POST", path: "/api/sandbox/exec/stream", token: a.access, body: map[string]any{
			"session_id": id, "command": "echo first; sleep 30", "timeout": 1,
		}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var lines []map[string]json.RawMessage
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		for sc.Scan() {
			var l map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
			lines = append(lines, l)
		}
		require.GreaterOrEqual(t, len(lines), 2, "%s", r.body)
		var first struct{ Stdout []byte }
		require.NoError(t, json.Unmarshal(lines[0]["result"], &first), "%s", r.body)
		require.Equal(t, "first\n", string(first.Stdout))
		var e map[string]any
		require.NoError(t, json.Unmarshal(lines[len(lines)-1]["error"], &e), "%s", r.body)
		require.Equal(t, "EXEC_TIMEOUT", e["reason"])
		require.Equal(t, "DEADLINE_EXCEEDED", e["code"])
		require.NotEmpty(t, e["detail"])
		require.Contains(t, e, "message")
	})
	t.Run("process logs", func(t *testing.T) {
		r := s.do(req{path: "/api/sandbox/" + id + "/processes/nope/logs", token: a.access})
		m := requireError(t, r, http.StatusNotFound)
		require.Equal(t, "SANDBOX_PATH_NOT_FOUND", m["reason"])
	})
	t.Run("a stream of another user's sandbox", func(t *testing.T) {
		b := s.register("streams-other@example.com")
		r := s.do(req{method: "POST", path: "/api/sandbox/exec/stream", token: b.access, body: map[string]any{
			"session_id": id, "command": "echo x",
		}})
		m := requireError(t, r, http.StatusNotFound)
		require.Equal(t, "SANDBOX_NOT_FOUND", m["reason"])
	})
}

// A sandbox whose agent cannot be reached answers 503 with a stable message: nothing of sandboxd's
// host (its run directory, the agent's socket, a dial error) reaches a browser. The cause stays in
// sandboxd's log.
func TestNoHostPathReachesABody(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("hostpaths@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	require.Equal(t, http.StatusOK, s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access,
		body: map[string]any{"session_id": id, "command": "echo alive > f"}}).status)

	// While sandboxd is down, the agent's socket goes away; the agent (a host process with the local
	// driver) stays alive, so the restarted sandboxd finds the sandbox running but cannot reach it.
	s.CrashSandboxd(t, func() {
		socks, err := filepath.Glob(filepath.Join(s.RunDir, "*"+id+"*", "agent.sock"))
		require.NoError(t, err)
		require.Len(t, socks, 1, "the agent's socket in %s", s.RunDir)
		require.NoError(t, os.Remove(socks[0]))
	})

	private := []string{s.RunDir, "agent.sock", "dial unix", "/tmp/", os.TempDir() + "/"}
	for _, tt := range []struct {
		req
		status int
	}{
		{req{method: "POST", path: "/api/sandbox/exec", body: map[string]any{"session_id": id, "command": "echo x"}}, 503},
		{req{method: "POST", path: "/api/sandbox/exec/stream", body: map[string]any{"session_id": id, "command": "echo x"}}, 503},
		{req{path: "/api/files/" + id + "?path=f"}, 503},
		{req{path: "/api/files/" + id + "/tree"}, 503},
		{req{method: "PUT", path: "/api/files/" + id, body: map[string]any{"path": "g", "content": "x"}}, 503},
		{req{path: "/api/sandbox/" + id + "/processes"}, 503},
		{req{path: "/api/sandbox/" + id + "/processes/web/logs"}, 503},
		{req{path: "/api/sandbox/" + id + "/ports"}, 503},
		// The preview listing does not need the agent: it says the sandbox has nothing to preview.
		{req{path: "/api/sandbox/preview/" + id}, 200},
	} {
		rq := tt.req
		rq.token = a.access
		r := s.do(rq)
		if tt.status >= 500 {
			m := requireError(t, r, tt.status)
			require.Equal(t, "SANDBOX_UNAVAILABLE", m["reason"], "%s %s: %s", rq.method, rq.path, r.body)
		} else {
			require.Equal(t, tt.status, r.status, "%s %s: %s", rq.method, rq.path, r.body)
		}
		for _, p := range private {
			require.NotContains(t, string(r.body), p, "%s %s leaks a host detail", rq.method, rq.path)
		}
		for k, vs := range r.header {
			for _, v := range vs {
				require.False(t, strings.Contains(v, s.RunDir), "header %s leaks the run directory", k)
			}
		}
	}
	// sandboxd logged the cause, with the socket's path, for its operators.
	require.Contains(t, s.Sandboxd.Log().String(), "agent.sock")
}
