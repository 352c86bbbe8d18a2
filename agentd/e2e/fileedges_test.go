package e2e_test

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/authn"
)

// The file tools' edges: Windows line endings, bytes that are not UTF-8 kept as they were, inserts
// at the top and after a last line without its newline, reads of what is not a text file, and a
// role's write prefix applying to edits too.
func TestFileToolEdges(t *testing.T) {
	s := startToolStack(t, map[string]brain{
		"mike": func(r modelRequest) answer {
			switch r.Turns() {
			case 0:
				return answer{Calls: []call{{Name: "send_message", Args: map[string]any{"to": "alex", "content": "edit"}}}}
			case 1:
				return answer{Calls: []call{{Name: "send_message", Args: map[string]any{"to": "bob", "content": "design"}}}}
			}
			return answer{Calls: []call{{Name: "end", Args: map[string]any{}}}}
		},
		"alex": steps(
			do("file_edit", map[string]any{"path": "win.txt", "old_str": "alpha\nbeta", "new_str": "alpha\nBETA"}),
			do("file_edit", map[string]any{"path": "latin1.txt", "old_str": "price", "new_str": "cost"}),
			do("file_insert", map[string]any{"path": "tail.txt", "line": 2, "text": "third"}),
			do("file_insert", map[string]any{"path": "tail.txt", "line": 0, "text": "zeroth\n"}),
			do("file_insert", map[string]any{"path": "tail.txt", "line": 9, "text": "x"}),
			do("file_read", map[string]any{"path": "blob.bin"}),
			do("file_read", map[string]any{"path": "src"}),
			do("file_read", map[string]any{"path": "nope.txt"}),
			do("file_read", map[string]any{"path": "tail.txt", "offset": 10}),
			do("file_edit", map[string]any{"path": "tail.txt", "old_str": "third", "new_str": "third"}),
			do("file_list", map[string]any{}),
		),
		"bob": steps(
			do("file_edit", map[string]any{"path": "src/app.js", "old_str": "a", "new_str": "b"}),
			do("file_write", map[string]any{"path": "docs/design.md", "content": "# Design\n"}),
			do("file_edit", map[string]any{"path": "docs/design.md", "old_str": "Design", "new_str": "Architecture"}),
		),
	}, stackOptions{})
	sid := s.session(t, "alice")
	ctx := authn.WithUser(t.Context(), "alice")
	s.write(t, "alice", sid, "win.txt", "alpha\r\nbeta\r\ngamma\r\n")
	latin1 := []byte("price: 10 \xa3\nend\n") // £ in Latin-1: not UTF-8
	_, err := s.c.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "latin1.txt", Encoding: "base64", Content: base64.StdEncoding.EncodeToString(latin1)})
	require.NoError(t, err)
	s.write(t, "alice", sid, "tail.txt", "first\nsecond")
	_, err = s.c.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "blob.bin", Encoding: "base64", Content: base64.StdEncoding.EncodeToString([]byte{0x89, 'P', 'N', 'G', 0, 0, 1, 2})})
	require.NoError(t, err)
	s.write(t, "alice", sid, "src/app.js", "a\n")
	s.write(t, "alice", sid, "node_modules/dep/index.js", "module.exports = 1\n")
	evs := s.run(t, "alice", sid, "edit")

	require.Equal(t, "alpha\r\nBETA\r\ngamma\r\n", s.read(t, "alice", sid, "win.txt"), "an edit written with \\n matches a file of \\r\\n and keeps its endings")
	f, err := s.c.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "latin1.txt"})
	require.NoError(t, err)
	got, err := base64.StdEncoding.DecodeString(f.GetContent())
	require.NoError(t, err)
	require.Equal(t, "cost: 10 \xa3\nend\n", string(got), "bytes that are not UTF-8 are kept")
	require.Equal(t, "zeroth\nfirst\nsecond\nthird\n", s.read(t, "alice", sid, "tail.txt"))

	out, ev := s.sentResult(t, evs, "file_insert", 2)
	require.True(t, isError(ev))
	require.Contains(t, out, "tail.txt has 4 lines; line 9 is past its end (use line=4 to append)")
	for i, want := range []string{
		"blob.bin is a binary file (8 B); it cannot be shown as text.",
		"src is a directory; file_list shows what it holds.",
		"nope.txt does not exist; file_list shows what does.",
		"tail.txt has 4 lines; offset 10 is past its end.",
	} {
		out, ev := s.sentResult(t, evs, "file_read", i)
		require.True(t, isError(ev), out)
		require.Equal(t, want, out)
	}
	out, _ = s.sentResult(t, evs, "file_edit", 2)
	require.Equal(t, "old_str and new_str are identical: there is nothing to change.", out)
	out, _ = s.sentResult(t, evs, "file_list", 0)
	require.Contains(t, out, "node_modules/  (not expanded: dependencies or build output)")
	require.Contains(t, out, "app.js  2 B")
	require.NotContains(t, out, "index.js")

	out, ev = s.sentResult(t, evs, "file_edit", 3)
	require.True(t, isError(ev))
	require.Equal(t, "you may only write under docs/ (not src/app.js)", out, "Bob's edits are confined like his writes")
	require.Equal(t, "a\n", s.read(t, "alice", sid, "src/app.js"))
	require.Equal(t, "# Architecture\n", s.read(t, "alice", sid, "docs/design.md"))
}
