package app_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckpointsREST walks the workspace and checkpoint endpoints through the gateway with the real
// stack behind it: create, list, diff (against now and against another checkpoint), restore of one
// file and of the whole workspace, the undo of a restore, and 404 for another user on every one.
func TestCheckpointsREST(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("owner@checkpoints.example")
	b := s.register("other@checkpoints.example")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{"title": "history"}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	exec := func(command string) {
		t.Helper()
		r := s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access, body: map[string]any{"session_id": id, "command": command}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		require.EqualValues(t, 0, r.json(t)["exit_code"], "%s", r.body)
	}
	read := func(path string) string {
		t.Helper()
		r := s.do(req{path: "/api/files/" + id + "?path=" + path, token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		return r.json(t)["content"].(string)
	}
	base := "/api/sandbox/" + id
	checkpoint := func(body map[string]any) map[string]any {
		t.Helper()
		r := s.do(req{method: "POST", path: base + "/checkpoints", token: a.access, body: body})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		return r.json(t)
	}

	exec("mkdir -p src && printf 'a\\nb\\n' > src/app.js && printf 'keep\\n' > notes.txt")
	first := checkpoint(map[string]any{"message": "first"})
	require.Equal(t, true, first["created"])
	c1 := first["checkpoint"].(map[string]any)
	require.Len(t, c1["id"], 16)
	require.Equal(t, "manual", c1["kind"])
	require.EqualValues(t, 2, c1["files_changed"])
	require.NotEmpty(t, c1["created_at"])
	// Nothing changed: the same checkpoint, not a new one.
	again := checkpoint(map[string]any{})
	require.Equal(t, false, again["created"])
	require.Equal(t, c1["id"], again["checkpoint"].(map[string]any)["id"])

	exec("printf 'a\\nB\\n' > src/app.js && rm notes.txt && echo new > new.txt")
	c2 := checkpoint(map[string]any{"agent": "Alex", "run_id": "r1", "step": "call_7"})["checkpoint"].(map[string]any)
	require.Equal(t, "step", c2["kind"])
	require.Equal(t, c1["id"], c2["parent_id"])
	require.EqualValues(t, 3, c2["files_changed"])

	t.Run("list", func(t *testing.T) {
		r := s.do(req{path: base + "/checkpoints", token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		l := r.json(t)["checkpoints"].([]any)
		require.Len(t, l, 2)
		require.Equal(t, c2["id"], l[0].(map[string]any)["id"])
		require.Equal(t, "Alex", l[0].(map[string]any)["agent"])
		r = s.do(req{path: base + "/checkpoints?limit=1", token: a.access})
		require.Equal(t, true, r.json(t)["more"])
		requireError(t, s.do(req{path: base + "/checkpoints?limit=501", token: a.access}), http.StatusBadRequest)
	})
	t.Run("diff", func(t *testing.T) {
		exec("echo later > later.txt")
		r := s.do(req{path: base + "/checkpoints/" + c1["id"].(string) + "/diff?against=" + c2["id"].(string), token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		byPath := map[string]map[string]any{}
		for _, f := range r.json(t)["files"].([]any) {
			f := f.(map[string]any)
			byPath[f["path"].(string)] = f
		}
		require.Len(t, byPath, 3, "%s", r.body)
		require.Equal(t, "modified", byPath["src/app.js"]["status"])
		require.Contains(t, byPath["src/app.js"]["diff"], "-b\n+B\n")
		require.Equal(t, "deleted", byPath["notes.txt"]["status"])
		require.Equal(t, "added", byPath["new.txt"]["status"])
		// Against now: the later file too; one path only.
		r = s.do(req{path: base + "/checkpoints/" + c2["id"].(string) + "/diff", token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		files := r.json(t)["files"].([]any)
		require.Len(t, files, 1, "%s", r.body)
		require.Equal(t, "later.txt", files[0].(map[string]any)["path"])
		r = s.do(req{path: base + "/checkpoints/" + c1["id"].(string) + "/diff?path=src", token: a.access})
		require.Len(t, r.json(t)["files"].([]any), 1, "%s", r.body)
		requireError(t, s.do(req{path: base + "/checkpoints/0123456789abcdef/diff", token: a.access}), http.StatusNotFound)
		requireError(t, s.do(req{path: base + "/checkpoints/" + c1["id"].(string) + "/diff?path=../../etc", token: a.access}), http.StatusBadRequest)
	})
	t.Run("restore one file, then everything, then undo", func(t *testing.T) {
		r := s.do(req{method: "POST", path: base + "/checkpoints/" + c1["id"].(string) + "/restore", token: a.access, body: map[string]any{"path": "src/app.js"}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		require.EqualValues(t, 1, r.json(t)["files_changed"])
		require.Equal(t, "a\nb\n", read("src/app.js"))
		require.Equal(t, "new\n", read("new.txt"), "only the one file moved")

		r = s.do(req{method: "POST", path: base + "/checkpoints/" + c1["id"].(string) + "/restore", token: a.access, body: map[string]any{}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		before := r.json(t)["before"].(map[string]any)
		require.Equal(t, "before_restore", before["kind"])
		require.Equal(t, "keep\n", read("notes.txt"))
		requireError(t, s.do(req{path: "/api/files/" + id + "?path=new.txt", token: a.access}), http.StatusNotFound)

		// The state before the restore is itself restorable.
		r = s.do(req{method: "POST", path: base + "/checkpoints/" + before["id"].(string) + "/restore", token: a.access, body: map[string]any{}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		require.Equal(t, "new\n", read("new.txt"))
		require.Equal(t, "later\n", read("later.txt"))
		require.Equal(t, "a\nb\n", read("src/app.js"))
		requireError(t, s.do(req{path: "/api/files/" + id + "?path=notes.txt", token: a.access}), http.StatusNotFound)
	})
	t.Run("workspace", func(t *testing.T) {
		r := s.do(req{path: base + "/workspace", token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		w := r.json(t)["workspace"].(map[string]any)
		require.Equal(t, "ok", w["state"])
		require.Equal(t, true, w["measured"])
		require.NotEmpty(t, w["size_bytes"])
		require.NotEmpty(t, w["history_bytes"])
	})
	t.Run("another user gets 404 on all of them", func(t *testing.T) {
		cid := c1["id"].(string)
		for _, tt := range []req{
			{path: base + "/workspace"},
			{method: "POST", path: base + "/workspace/reset", body: map[string]any{}},
			{path: base + "/checkpoints"},
			{method: "POST", path: base + "/checkpoints", body: map[string]any{}},
			{path: base + "/checkpoints/" + cid + "/diff"},
			{method: "POST", path: base + "/checkpoints/" + cid + "/restore", body: map[string]any{}},
		} {
			tt.token = b.access
			t.Run(tt.method+" "+tt.path, func(t *testing.T) {
				requireError(t, s.do(tt), http.StatusNotFound)
			})
		}
		require.Equal(t, "new\n", read("new.txt"), "untouched")
	})
}
