package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
)

// agentErr returns the agent's error, failing the test for anything else (a transport error, a hang cut by
// the deadline, success).
func agentErr(t *testing.T, err error) *agentclient.Error {
	t.Helper()
	var ae *agentclient.Error
	require.True(t, errors.As(err, &ae), "want an agent error, got %v", err)
	return ae
}

// fileOps are the files API's operations on one path, each bounded by a short deadline so that a call that
// blocks fails the test instead of hanging it.
func fileOps(a *testAgent) map[string]func(ctx context.Context, p string) error {
	return map[string]func(ctx context.Context, p string) error{
		"read": func(ctx context.Context, p string) error { _, err := a.ReadFile(ctx, p); return err },
		"write": func(ctx context.Context, p string) error {
			_, err := a.WriteFile(ctx, agentapi.WriteFileRequest{Path: p, Content: []byte("x")})
			return err
		},
		"append": func(ctx context.Context, p string) error {
			_, err := a.WriteFile(ctx, agentapi.WriteFileRequest{Path: p, Content: []byte("x"), Append: true})
			return err
		},
		"tree":   func(ctx context.Context, p string) error { _, err := a.Tree(ctx, p, 1, true); return err },
		"delete": func(ctx context.Context, p string) error { _, err := a.DeleteFile(ctx, p); return err },
		"exec cwd": func(ctx context.Context, p string) error {
			_, err := run(ctx, a.Client, agentapi.ExecRequest{Command: "pwd", Cwd: p, Timeout: 5 * time.Second})
			return err
		},
	}
}

// A FIFO, a unix socket or a device in the workspace is refused at once by every operation that would open
// it; open(2) of a FIFO used to block the request until the caller's deadline (13.2).
func TestSpecialFilesAreRefusedAtOnce(t *testing.T) {
	a := startAgentIn(t, nil)
	require.NoError(t, os.MkdirAll(a.ws(), 0o755))
	require.NoError(t, syscall.Mkfifo(a.ws("fifo"), 0o644))
	require.NoError(t, os.Symlink("fifo", a.ws("fifo-link")))
	ln, err := net.Listen("unix", a.ws("sock"))
	require.NoError(t, err)
	defer ln.Close()
	special := map[string]string{"fifo": "FIFO", "fifo-link": "FIFO", "sock": "unix socket"}
	if os.Geteuid() == 0 {
		// The local driver runs commands as sandboxd's user, which may be root and so may mknod.
		require.NoError(t, syscall.Mknod(a.ws("null"), syscall.S_IFCHR|0o666, 1<<8|3))
		special["null"] = "device"
	}

	ops := fileOps(a)
	for name, kind := range special {
		for _, op := range []string{"read", "write", "append"} {
			t.Run(op+" "+name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				defer cancel()
				begin := time.Now()
				ae := agentErr(t, ops[op](ctx, name))
				require.Less(t, time.Since(begin), time.Second)
				require.Equal(t, agentapi.CodeInvalid, ae.Code, ae.Msg)
				require.Equal(t, 400, ae.Status)
				require.Contains(t, ae.Msg, kind)
				require.NotContains(t, ae.Msg, a.dir, "a host path reached the caller")
			})
		}
	}
	for _, op := range []string{"tree", "exec cwd"} {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		ae := agentErr(t, ops[op](ctx, "fifo"))
		cancel()
		require.Equal(t, agentapi.CodeInvalid, ae.Code, "%s: %s", op, ae.Msg)
	}

	// Nothing was replaced or written: the FIFO is still one, and a reader on it got no byte.
	fi, err := os.Lstat(a.ws("fifo"))
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&os.ModeNamedPipe)
	rd, err := os.OpenFile(a.ws("fifo"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	require.NoError(t, err)
	defer rd.Close()
	ae := agentErr(t, ops["write"](t.Context(), "fifo")) // with a reader, open(2) succeeds: the fd check refuses
	require.Equal(t, agentapi.CodeInvalid, ae.Code)
	n, _ := syscall.Read(int(rd.Fd()), make([]byte, 8))
	require.LessOrEqual(t, n, 0, "the write reached the FIFO's reader")

	// Deleting one only removes a name; it never opens it.
	for name := range special {
		_, err := a.DeleteFile(t.Context(), name)
		require.NoError(t, err, name)
		_, err = os.Lstat(a.ws(name))
		require.ErrorIs(t, err, os.ErrNotExist)
	}
}

// Names longer than NAME_MAX and symlink loops are the caller's input: a 4xx naming the problem, never an
// internal error carrying a host path (13.6).
func TestFileSystemErrorsAreTheCallersInput(t *testing.T) {
	a := startAgentIn(t, nil)
	require.NoError(t, os.MkdirAll(a.ws("dir"), 0o755))
	require.NoError(t, os.Symlink("self", a.ws("self")))
	require.NoError(t, os.Symlink("ping", a.ws("pong")))
	require.NoError(t, os.Symlink("pong", a.ws("ping")))
	long := strings.Repeat("n", 256)

	ops := fileOps(a)
	for _, tc := range []struct {
		path string
		want string
	}{
		{long, "file name too long"},
		{"dir/" + long, "file name too long"},
		{"self", "too many levels of symbolic links"},
		{"ping", "too many levels of symbolic links"},
		{"self/below", "too many levels of symbolic links"},
	} {
		for name, op := range ops {
			if name == "delete" && !strings.Contains(tc.path, "/") && tc.want != "file name too long" {
				continue // deleting the loop itself is legitimate: below
			}
			t.Run(name+" "+shortPath(tc.path), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				ae := agentErr(t, op(ctx, tc.path))
				require.Equal(t, agentapi.CodeInvalid, ae.Code, ae.Msg)
				require.Contains(t, ae.Msg, tc.want)
				require.NotContains(t, ae.Msg, a.dir, "a host path reached the caller")
				require.Less(t, len(ae.Msg), 300, "the message repeats the whole path")
			})
		}
	}
	// A loop's own name is an ordinary symlink to delete.
	for _, p := range []string{"self", "ping", "pong"} {
		_, err := a.DeleteFile(t.Context(), p)
		require.NoError(t, err, p)
	}
	if os.Geteuid() != 0 {
		require.NoError(t, os.WriteFile(a.ws("locked"), []byte("x"), 0))
		ae := agentErr(t, fileOps(a)["read"](t.Context(), "locked"))
		require.Equal(t, agentapi.CodeDenied, ae.Code, ae.Msg)
	}
}

// A hard link inside the workspace to a file outside the sandbox is neither read nor written; links among
// the sandbox's own files — `cp -l`, a pnpm store in the sandbox's home — are (13.15).
func TestHardLinks(t *testing.T) {
	a := startAgentIn(t, func(dir string, o *Options) {
		// As the local driver: the workspace and the sandbox's own home.
		o.LinkScope = []string{filepath.Join(dir, "ws"), filepath.Join(dir, "home")}
	})
	ctx := t.Context()
	write := func(p, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	read := func(p string) (string, error) {
		f, err := a.ReadFile(ctx, p)
		return string(f.Content), err
	}
	denied := func(err error) {
		t.Helper()
		ae := agentErr(t, err)
		require.Equal(t, agentapi.CodeDenied, ae.Code, ae.Msg)
		require.NotContains(t, ae.Msg, a.dir, "a host path reached the caller")
	}

	t.Run("a link to a file outside the sandbox is refused", func(t *testing.T) {
		outside := filepath.Join(a.dir, "host-secret")
		write(outside, "host secret\n")
		require.NoError(t, os.MkdirAll(a.ws(), 0o755))
		require.NoError(t, os.Link(outside, a.ws("leak")))

		_, err := read("leak")
		denied(err)
		_, err = a.WriteFile(ctx, agentapi.WriteFileRequest{Path: "leak", Content: []byte("owned")})
		denied(err)
		_, err = a.WriteFile(ctx, agentapi.WriteFileRequest{Path: "leak", Content: []byte("owned"), Append: true})
		denied(err)
		b, err := os.ReadFile(outside)
		require.NoError(t, err)
		require.Equal(t, "host secret\n", string(b), "a refused write changed the outside file")

		// Listed like any file, and deletable: deleting removes the name only.
		tree, err := a.Tree(ctx, "", 1, false)
		require.NoError(t, err)
		require.Contains(t, names(tree.Entries), "leak")
		_, err = a.DeleteFile(ctx, "leak")
		require.NoError(t, err)
		b, err = os.ReadFile(outside)
		require.NoError(t, err)
		require.Equal(t, "host secret\n", string(b))
	})

	t.Run("pnpm's store in the sandbox's home", func(t *testing.T) {
		// pnpm's layout: a content-addressed store under $HOME, hard-linked into node_modules/.pnpm.
		store := filepath.Join(a.dir, "home", ".local", "share", "pnpm", "store", "v3", "files")
		files := map[string]string{
			"node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad/index.js":     "module.exports = leftPad;\n",
			"node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad/package.json": `{"name":"left-pad"}`,
		}
		i := 0
		for rel, content := range files {
			blob := filepath.Join(store, "3f", strings.Repeat("ab", 30)+string(rune('0'+i)))
			i++
			write(blob, content)
			require.NoError(t, os.MkdirAll(filepath.Dir(a.ws(rel)), 0o755))
			require.NoError(t, os.Link(blob, a.ws(rel)))
			// A second project of the same sandbox shares the store.
			second := a.ws("other", rel)
			require.NoError(t, os.MkdirAll(filepath.Dir(second), 0o755))
			require.NoError(t, os.Link(blob, second))
		}
		for rel, content := range files {
			got, err := read(rel)
			require.NoError(t, err, rel)
			require.Equal(t, content, got)
			got, err = read("other/" + rel)
			require.NoError(t, err, rel)
			require.Equal(t, content, got)
		}
		_, err := a.WriteFile(ctx, agentapi.WriteFileRequest{Path: "node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad/index.js", Content: []byte("patched\n")})
		require.NoError(t, err)
	})

	t.Run("cp -l inside the workspace, read at once", func(t *testing.T) {
		write(a.ws("src", "a.txt"), "alpha\n")
		res, err := run(ctx, a.Client, agentapi.ExecRequest{Command: "cp -al src copy && cat copy/a.txt", Timeout: 10 * time.Second})
		require.NoError(t, err)
		require.Zero(t, res.ExitCode, string(res.Stderr))
		for _, p := range []string{"src/a.txt", "copy/a.txt"} {
			got, err := read(p)
			require.NoError(t, err, p)
			require.Equal(t, "alpha\n", got)
		}
	})

	t.Run("a file linked outside after it was checked is refused, and served again once unlinked", func(t *testing.T) {
		write(a.ws("notes.txt"), "mine\n")
		require.NoError(t, os.Link(a.ws("notes.txt"), a.ws("notes-copy.txt")))
		_, err := read("notes.txt")
		require.NoError(t, err)
		// The walk that served it is cached; a link made outside since must still be seen.
		require.NoError(t, os.Link(a.ws("notes.txt"), filepath.Join(a.dir, "exfil")))
		_, err = read("notes.txt")
		denied(err)
		require.NoError(t, os.Remove(filepath.Join(a.dir, "exfil")))
		got, err := read("notes-copy.txt")
		require.NoError(t, err)
		require.Equal(t, "mine\n", got)
	})

	t.Run("without a scope, the workspace alone is the sandbox's", func(t *testing.T) {
		b := startAgentIn(t, nil)
		home := filepath.Join(b.dir, "home", "blob")
		write(home, "x")
		require.NoError(t, os.MkdirAll(b.ws(), 0o755))
		require.NoError(t, os.Link(home, b.ws("blob")))
		_, err := b.ReadFile(ctx, "blob")
		ae := agentErr(t, err)
		require.Equal(t, agentapi.CodeDenied, ae.Code, ae.Msg)
	})
}

func names(es []agentapi.TreeEntry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// BenchmarkLinkWalk measures what the first read of a hard-linked file costs: one walk of the sandbox's
// directories, here a pnpm-like layout of 20,000 store files linked into node_modules (40,000 names).
func BenchmarkLinkWalk(b *testing.B) {
	dir := b.TempDir()
	store, ws := filepath.Join(dir, "home", "store"), filepath.Join(dir, "ws")
	for i := range 20000 {
		sub := strconv.Itoa(i % 256)
		blob := filepath.Join(store, sub, strconv.Itoa(i))
		link := filepath.Join(ws, "node_modules", ".pnpm", "pkg"+sub, strconv.Itoa(i)+".js")
		for _, d := range []string{filepath.Dir(blob), filepath.Dir(link)} {
			require.NoError(b, os.MkdirAll(d, 0o755))
		}
		require.NoError(b, os.WriteFile(blob, []byte("x"), 0o644))
		require.NoError(b, os.Link(blob, link))
	}
	g := newLinkGuard([]string{ws, filepath.Join(dir, "home")})
	for b.Loop() {
		g.walk()
	}
	require.Len(b, g.index, 20000)
	require.False(b, g.partial)
}
