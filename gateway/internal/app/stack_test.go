package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestRESTTable walks the public REST table of ARCHITECTURE.md through the
// gateway with real agentd, sandboxd and Redis behind it: paths, statuses,
// snake_case fields and JSON arrays.
func TestRESTTable(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("owner@example.com")

	created := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{"title": "first"}})
	require.Equal(t, http.StatusCreated, created.status, "%s", created.body)
	sess := created.json(t)
	require.Equal(t, "first", sess["title"])
	require.Equal(t, a.id, sess["owner_id"])
	require.NotEmpty(t, sess["created_at"])
	require.IsType(t, []any{}, sess["messages"])
	id := sess["id"].(string)
	_, err := uuid.Parse(id)
	require.NoError(t, err)

	second := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, second.status, "%s", second.body)
	secondID := second.json(t)["id"].(string)

	t.Run("list newest first", func(t *testing.T) {
		l := s.do(req{path: "/api/sessions", token: a.access}).list(t)
		require.Len(t, l, 2)
		require.Equal(t, secondID, l[0].(map[string]any)["id"])
		require.Equal(t, id, l[1].(map[string]any)["id"])
	})
	t.Run("get", func(t *testing.T) {
		r := s.do(req{path: "/api/sessions/" + id, token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		require.Equal(t, id, r.json(t)["id"])
	})
	t.Run("exec", func(t *testing.T) {
		r := s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access, body: map[string]any{
			"session_id": id, "command": "printf hi > hello.txt && echo out && echo err >&2",
		}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		m := r.json(t)
		require.EqualValues(t, 0, m["exit_code"])
		require.Equal(t, "out\n", m["stdout"])
		require.Equal(t, "err\n", m["stderr"])
		require.Contains(t, m, "command")
	})
	t.Run("exec timeout is 408", func(t *testing.T) {
		r := s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access, body: map[string]any{
			"session_id": id, "command": "sleep 30", "timeout": 1,
		}})
		requireError(t, r, http.StatusRequestTimeout)
	})
	t.Run("exec bad input is 400", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"session_id": id, "command": ""},
			{"session_id": id, "command": "ls", "cwd": "../../etc"},
			{"session_id": id, "command": "ls", "timeout": -1},
			{"session_id": "nope", "command": "ls"},
		} {
			requireError(t, s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access, body: body}), http.StatusBadRequest)
		}
	})
	t.Run("files", func(t *testing.T) {
		tree := s.do(req{path: "/api/files/" + id + "/tree", token: a.access})
		require.Equal(t, http.StatusOK, tree.status, "%s", tree.body)
		m := tree.json(t)
		require.Contains(t, m, "root")
		found := false
		for _, e := range m["entries"].([]any) {
			if e := e.(map[string]any); e["name"] == "hello.txt" {
				found = true
				require.Equal(t, "file", e["type"])
			}
		}
		require.True(t, found, "%s", tree.body)
		requireError(t, s.do(req{path: "/api/files/" + id + "/tree?depth=11", token: a.access}), http.StatusBadRequest)
		requireError(t, s.do(req{path: "/api/files/" + id + "/tree?depth=abc", token: a.access}), http.StatusBadRequest)

		f := s.do(req{path: "/api/files/" + id + "?path=hello.txt", token: a.access})
		require.Equal(t, http.StatusOK, f.status, "%s", f.body)
		fm := f.json(t)
		require.Equal(t, "hi", fm["content"])
		require.Equal(t, "hello.txt", fm["name"])
		require.Contains(t, fm, "size")
		require.Contains(t, fm, "modified_at")
		requireError(t, s.do(req{path: "/api/files/" + id + "?path=missing.txt", token: a.access}), http.StatusNotFound)
		requireError(t, s.do(req{path: "/api/files/" + id + "?path=../../../etc/passwd", token: a.access}), http.StatusBadRequest)
	})
	t.Run("chat", func(t *testing.T) {
		r := s.do(req{method: "POST", path: "/api/chat/messages", token: a.access, body: map[string]any{"session_id": id, "content": "hello team"}})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		m := r.json(t)
		user := m["user"].(map[string]any)
		require.Equal(t, "user", user["sender"])
		require.Equal(t, "hello team", user["content"])
		require.Equal(t, id, user["session_id"])
		require.Equal(t, []any{}, m["responses"])
		requireError(t, s.do(req{method: "POST", path: "/api/chat/messages", token: a.access, body: map[string]any{"session_id": id, "content": ""}}), http.StatusBadRequest)
		requireError(t, s.do(req{method: "POST", path: "/api/chat/messages", token: a.access, body: map[string]any{"session_id": id, "content": strings.Repeat("x", 4001)}}), http.StatusBadRequest)

		for _, path := range []string{"/api/sessions/" + id + "/messages", "/api/chat/messages/" + id} {
			l := s.do(req{path: path, token: a.access})
			require.Equal(t, http.StatusOK, l.status, "%s", l.body)
			msgs := l.list(t)
			require.NotEmpty(t, msgs)
			require.Equal(t, "hello team", msgs[0].(map[string]any)["content"])
		}
	})
	t.Run("sandbox launch", func(t *testing.T) {
		r := s.do(req{method: "POST", path: "/api/sandbox/launch", token: a.access, body: map[string]any{"title": "launched"}})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		m := r.json(t)
		require.Equal(t, "launched", m["session"].(map[string]any)["title"])
		for _, k := range []string{"container_id", "container_name", "workspace_path", "logs"} {
			require.Contains(t, m, k)
		}
		require.IsType(t, []any{}, m["logs"])
	})
	t.Run("preview", func(t *testing.T) {
		r := s.do(req{path: "/api/sandbox/preview/" + id, token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		m := r.json(t)
		require.Equal(t, id, m["session_id"])
		require.Contains(t, m, "available")
		require.IsType(t, []any{}, m["previews"])
	})
	t.Run("destroy", func(t *testing.T) {
		r := s.do(req{method: "POST", path: "/api/sandbox/destroy", token: a.access, body: map[string]any{"session_id": secondID}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		m := r.json(t)
		require.Equal(t, secondID, m["session_id"])
		require.Contains(t, m, "stopped")

		all := s.do(req{method: "POST", path: "/api/sandbox/destroy_all", token: a.access})
		require.Equal(t, http.StatusOK, all.status, "%s", all.body)
		require.IsType(t, []any{}, all.json(t)["stopped_sessions"])
	})
	t.Run("delete", func(t *testing.T) {
		r := s.do(req{method: "DELETE", path: "/api/sessions/" + secondID, token: a.access})
		require.Equal(t, http.StatusNoContent, r.status, "%s", r.body)
		require.Empty(t, r.body)
		requireError(t, s.do(req{path: "/api/sessions/" + secondID, token: a.access}), http.StatusNotFound)
	})
	t.Run("bad ids", func(t *testing.T) {
		requireError(t, s.do(req{path: "/api/sessions/not-a-uuid", token: a.access}), http.StatusBadRequest)
		requireError(t, s.do(req{path: "/api/sessions/" + uuid.NewString(), token: a.access}), http.StatusNotFound)
		requireError(t, s.do(req{method: "DELETE", path: "/api/sessions/%27%3B--", token: a.access}), http.StatusBadRequest)
		requireError(t, s.do(req{path: "/api/files/not-a-uuid/tree", token: a.access}), http.StatusBadRequest)
	})
	t.Run("hostile inputs never 5xx", func(t *testing.T) {
		for _, r := range []req{
			{method: "POST", path: "/api/sessions", body: `{"title":`},
			{method: "POST", path: "/api/sessions", body: `{"title":123}`},
			{method: "POST", path: "/api/sessions", body: `{"title":"x","owner_id":"someone"}`},
			{method: "POST", path: "/api/sessions", body: `{"title":"` + strings.Repeat("t", 500) + `"}`},
			{method: "POST", path: "/api/chat/messages", body: `{"session_id":"` + id + `","content":["a"]}`},
			{method: "POST", path: "/api/chat/messages", body: `{"session_id":42,"content":"hi"}`},
			{method: "POST", path: "/api/chat/messages", body: `{"session_id":"` + id + `","content":"hi","role":"system"}`},
			{method: "POST", path: "/api/sandbox/exec", body: `{"session_id":"` + id + `","command":"ls","timeout":"soon"}`},
			{method: "POST", path: "/api/sandbox/exec", body: `{"session_id":"` + id + `","command":"ls","env":{"A":1}}`},
			{method: "POST", path: "/api/sandbox/exec", body: `{"session_id":"` + id + `","command":"ls","timeout":1e309}`},
			{method: "POST", path: "/api/sandbox/exec", body: `{"session_id":"` + id + `","command":"ls","cwd":"/etc"}`},
			{method: "POST", path: "/api/sandbox/launch", body: `{"session_id":"../../x"}`},
			{method: "POST", path: "/api/sandbox/destroy", body: `{}`},
			{path: "/api/files/" + id + "?path=%00"},
			{path: "/api/files/" + id + "?path=%ff"},
			{path: "/api/files/" + id + "/tree?depth=-1"},
			{path: "/api/files/" + id + "/tree?include_hidden=maybe"},
			{path: "/api/files/" + id + "/tree?root=../../.."},
			{path: "/api/sessions/%E0%A4"},
			{path: "/api/sandbox/preview/" + strings.Repeat("a", 5000)},
		} {
			r.token = a.access
			got := s.do(r)
			require.Less(t, got.status, 500, "%s %s: %s", r.method, r.path, got.body)
			require.GreaterOrEqual(t, got.status, 400, "%s %s: %s", r.method, r.path, got.body)
			require.NotEmpty(t, got.json(t)["detail"], "%s %s", r.method, r.path)
		}
	})
	t.Run("healthz all serving", func(t *testing.T) {
		r := s.do(req{path: "/healthz"})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	})
}

// TestCrossTenant: user B tries every endpoint on user A's session and gets
// 404 each time; A's session is untouched afterwards.
func TestCrossTenant(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("a@tenant.example")
	b := s.register("b@tenant.example")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{"title": "private"}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	require.Equal(t, http.StatusOK, s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access, body: map[string]any{"session_id": id, "command": "printf secret > s.txt"}}).status)

	tests := []req{
		{path: "/api/sessions/" + id},
		{path: "/api/sessions/" + id + "/messages"},
		{path: "/api/chat/messages/" + id},
		{method: "POST", path: "/api/chat/messages", body: map[string]any{"session_id": id, "content": "hi"}},
		{method: "POST", path: "/api/sessions/" + id + "/cancel", body: map[string]any{}},
		{path: "/api/files/" + id + "/tree"},
		{path: "/api/files/" + id + "?path=s.txt"},
		{method: "POST", path: "/api/sandbox/launch", body: map[string]any{"session_id": id}},
		{method: "POST", path: "/api/sandbox/exec", body: map[string]any{"session_id": id, "command": "cat s.txt"}},
		{method: "POST", path: "/api/sandbox/destroy", body: map[string]any{"session_id": id}},
		{path: "/api/sandbox/preview/" + id},
		{path: "/api/sessions/" + id + "/events"},
		{path: "/api/ws/sessions/" + id},
		{method: "DELETE", path: "/api/sessions/" + id},
	}
	for _, tt := range tests {
		tt.token = b.access
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			requireError(t, s.do(tt), http.StatusNotFound)
		})
	}
	t.Run("websocket upgrade", func(t *testing.T) {
		_, status, err := wsDial(t.Context(), wsURL(s.gateway, id, b.access, 0), nil)
		require.Error(t, err)
		require.Equal(t, http.StatusNotFound, status)
	})
	t.Run("destroy_all spares other users", func(t *testing.T) {
		require.Equal(t, http.StatusOK, s.do(req{method: "POST", path: "/api/sandbox/destroy_all", token: b.access}).status)
		require.Empty(t, s.do(req{path: "/api/sessions", token: b.access}).list(t))
	})
	// A's session, its files and its sandbox are intact.
	require.Equal(t, http.StatusOK, s.do(req{path: "/api/sessions/" + id, token: a.access}).status)
	f := s.do(req{path: "/api/files/" + id + "?path=s.txt", token: a.access})
	require.Equal(t, http.StatusOK, f.status, "%s", f.body)
	require.Equal(t, "secret", f.json(t)["content"])
}

func wsURL(g *gateway, session, token string, after uint32) string {
	return fmt.Sprintf("%s/api/ws/sessions/%s?token=%s&after_seq=%d", strings.Replace(g.base, "http", "ws", 1), session, token, after)
}

type event struct {
	Type     string         `json:"type"`
	Sequence uint32         `json:"sequence"`
	Data     map[string]any `json:"data"`
	Session  string         `json:"session_id"`
	Raw      map[string]any `json:"-"`
}

// runEnded reports whether ev closes a run (agentd's run/status events carry
// data.status).
func runEnded(ev event) bool {
	switch ev.Data["status"] {
	case "completed", "failed", "cancelled", "stopped", "waiting":
		return true
	}
	return false
}

// readWS reads events until stop returns true for one (included) or ctx ends.
func readWS(ctx context.Context, t *testing.T, c *websocket.Conn, stop func(event) bool) []event {
	t.Helper()
	var evs []event
	for {
		_, msg, err := c.Read(ctx)
		require.NoError(t, err)
		var ev event
		require.NoError(t, json.Unmarshal(msg, &ev))
		require.NoError(t, json.Unmarshal(msg, &ev.Raw))
		evs = append(evs, ev)
		if stop(ev) {
			return evs
		}
	}
}

// TestEventStreamResume: a WebSocket client that disconnects mid-run and
// resumes with after_seq sees every event exactly once, in order, the same
// as a full replay.
func TestEventStreamResume(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("stream@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	first, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, 0), nil)
	require.NoError(t, err)
	first.SetReadLimit(1 << 20)
	require.Equal(t, http.StatusCreated, s.do(req{method: "POST", path: "/api/chat/messages", token: a.access, body: map[string]any{"session_id": id, "content": "build a hello world page"}}).status)

	// Leave after a few events, while the run is still going.
	n := 0
	part1 := readWS(ctx, t, first, func(ev event) bool { n++; return n == 3 || runEnded(ev) })
	require.NoError(t, first.Close(websocket.StatusNormalClosure, "bye"))
	last := part1[len(part1)-1].Sequence

	second, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, last), nil)
	require.NoError(t, err)
	second.SetReadLimit(1 << 20)
	var part2 []event
	if !runEnded(part1[len(part1)-1]) {
		part2 = readWS(ctx, t, second, runEnded)
	}
	_ = second.Close(websocket.StatusNormalClosure, "")

	got := append(append([]event{}, part1...), part2...)
	for i, ev := range got {
		require.Equal(t, id, ev.Session)
		if i > 0 {
			require.Greater(t, ev.Sequence, got[i-1].Sequence, "duplicate or out of order at %d", i)
		}
	}

	// A fresh replay from 0 is the ground truth.
	replay, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, 0), nil)
	require.NoError(t, err)
	replay.SetReadLimit(1 << 20)
	endSeq := got[len(got)-1].Sequence
	all := readWS(ctx, t, replay, func(ev event) bool { return ev.Sequence >= endSeq })
	_ = replay.Close(websocket.StatusNormalClosure, "")
	var want, have []uint32
	for _, ev := range all {
		if ev.Sequence > 0 {
			want = append(want, ev.Sequence)
		}
	}
	for _, ev := range got {
		have = append(have, ev.Sequence)
	}
	require.Equal(t, want[len(want)-len(have):], have, "resumed stream differs from the log")
	require.Equal(t, want[0:len(want)-len(have)], want[:len(want)-len(have)])
	require.Equal(t, len(want), len(have)+countBefore(all, got[0].Sequence), "gap between connections")

	t.Run("browser origins", func(t *testing.T) {
		c, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, endSeq), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://localhost:3000"}}})
		require.NoError(t, err)
		_ = c.Close(websocket.StatusNormalClosure, "")
		_, code, err := wsDial(ctx, wsURL(s.gateway, id, a.access, endSeq), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, code)
	})

	// Event shape: the seed's fields, snake_case.
	for _, k := range []string{"type", "sender", "agent", "content", "message_id", "final", "session_id", "timestamp", "sequence"} {
		require.Contains(t, got[0].Raw, k)
	}
}

func countBefore(evs []event, seq uint32) int {
	n := 0
	for _, ev := range evs {
		if ev.Sequence < seq {
			n++
		}
	}
	return n
}

// TestSSE: the SSE variant replays with ids and resumes with Last-Event-ID.
func TestSSE(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"GATEWAY_MAX_STREAMS_PER_USER": "2"})
	a := s.register("sse@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	require.Equal(t, http.StatusCreated, s.do(req{method: "POST", path: "/api/chat/messages", token: a.access, body: map[string]any{"session_id": id, "content": "hi"}}).status)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	read := func(lastID string, stop func(uint32, event) bool) []uint32 {
		hr, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/sessions/"+id+"/events", nil)
		require.NoError(t, err)
		hr.Header.Set("Authorization", "Bearer "+a.access)
		if lastID != "" {
			hr.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(hr)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ids []uint32
		var cur uint32
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				n, err := strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 32)
				require.NoError(t, err)
				cur = uint32(n)
			case strings.HasPrefix(line, "data: "):
				var ev event
				require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev))
				require.Equal(t, cur, ev.Sequence)
				ids = append(ids, cur)
				if stop(cur, ev) {
					return ids
				}
			}
		}
		t.Fatalf("stream ended early: %v", sc.Err())
		return nil
	}
	firstTwo := read("", func(uint32, event) bool { return true })
	require.Equal(t, []uint32{1}, firstTwo)
	rest := read("1", func(_ uint32, ev event) bool { return runEnded(ev) })
	require.Equal(t, uint32(2), rest[0])
	for i := 1; i < len(rest); i++ {
		require.Equal(t, rest[i-1]+1, rest[i])
	}

	t.Run("bounded per user", func(t *testing.T) {
		var conns []*websocket.Conn
		for range 2 {
			c, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, 0), nil)
			require.NoError(t, err)
			conns = append(conns, c)
		}
		_, status, err := wsDial(ctx, wsURL(s.gateway, id, a.access, 0), nil)
		require.Error(t, err)
		require.Equal(t, http.StatusTooManyRequests, status)
		for _, c := range conns {
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
		// Slots are released when clients go.
		require.Eventually(t, func() bool {
			c, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, 0), nil)
			if err != nil {
				return false
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
			return true
		}, 5*time.Second, 50*time.Millisecond)
	})
}

// wsDial is websocket.Dial returning the handshake's HTTP status, so a
// refused upgrade can be checked. coder/websocket leaves the
// body nil on success and a drained copy on failure; closing it is a no-op
// kept for linters that cannot know that.
func wsDial(ctx context.Context, url string, opts *websocket.DialOptions) (*websocket.Conn, int, error) {
	c, resp, err := websocket.Dial(ctx, url, opts)
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
	}
	return c, status, err
}
