package app_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/stacktest"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// filesSandbox is a launched sandbox and the calls the files tests make on it.
type filesSandbox struct {
	e   *env
	ctx context.Context
	sid string
}

func newFilesSandbox(t *testing.T, drv string) *filesSandbox {
	e := start(t, drv, nil)
	s := &filesSandbox{e: e, ctx: as(t.Context(), "user-a"), sid: newSession()}
	_, err := e.sb.LaunchSandbox(s.ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: s.sid})
	require.NoError(t, err)
	return s
}

// sh runs a command in the sandbox and requires it to succeed.
func (s *filesSandbox) sh(t *testing.T, cmd string) string {
	t.Helper()
	res, err := s.e.sb.Exec(s.ctx, &sandboxdv1.ExecRequest{SessionId: s.sid, Command: cmd})
	require.NoError(t, err)
	require.EqualValues(t, 0, res.GetExitCode(), "%s: %s", cmd, res.GetStderr())
	return res.GetStdout()
}

// ops are the FileService calls (and exec's cwd) on one path, each under a deadline short enough that a
// call that blocks fails the test rather than hanging it.
func (s *filesSandbox) ops() map[string]func(ctx context.Context, p string) error {
	f := s.e.files
	return map[string]func(ctx context.Context, p string) error{
		"read": func(ctx context.Context, p string) error {
			_, err := f.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: s.sid, Path: p})
			return err
		},
		"write": func(ctx context.Context, p string) error {
			_, err := f.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: s.sid, Path: p, Content: "x"})
			return err
		},
		"append": func(ctx context.Context, p string) error {
			_, err := f.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: s.sid, Path: p, Content: "x", Append: true})
			return err
		},
		"tree": func(ctx context.Context, p string) error {
			_, err := f.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: s.sid, Root: p, Depth: 1})
			return err
		},
		"delete": func(ctx context.Context, p string) error {
			_, err := f.DeleteFile(ctx, &sandboxdv1.DeleteFileRequest{SessionId: s.sid, Path: p})
			return err
		},
		"exec cwd": func(ctx context.Context, p string) error {
			_, err := s.e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: s.sid, Command: "pwd", Cwd: p})
			return err
		},
	}
}

// requireRefused checks a refusal: code, a message saying why, and no host path in it.
func (s *filesSandbox) requireRefused(t *testing.T, err error, want codes.Code, why string) {
	t.Helper()
	require.Equal(t, want, status.Code(err), "%v", err)
	msg := status.Convert(err).Message()
	require.Contains(t, msg, why)
	require.NotContains(t, msg, s.e.vars["SANDBOXD_RUN_DIR"], "a host path reached the caller")
}

// listenOnSocket leaves a unix socket at "sock" in the workspace. Neither sandbox image has a tool that
// listens on one (busybox's nc cannot), so the sandbox runs a second sandbox-agent, which does.
func (s *filesSandbox) listenOnSocket(t *testing.T) {
	bin, err := os.ReadFile(stacktest.Bin(t, "sandbox-agent"))
	require.NoError(t, err)
	// Two writes: one would come close to gRPC's 16 MiB message limit once base64-encoded.
	half := len(bin) / 2
	for i, part := range [][]byte{bin[:half], bin[half:]} {
		_, err := s.e.files.WriteFile(s.ctx, &sandboxdv1.WriteFileRequest{SessionId: s.sid, Path: ".sockd",
			Content: base64.StdEncoding.EncodeToString(part), Encoding: "base64", Append: i > 0})
		require.NoError(t, err)
	}
	s.sh(t, "chmod +x .sockd")
	_, err = s.e.procs.StartProcess(s.ctx, &sandboxdv1.StartProcessRequest{SessionId: s.sid, Name: "sockd",
		Command: "exec ./.sockd -listen sock -workspace .sockd-ws -state-dir .sockd-state"})
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool {
		res, err := s.e.sb.Exec(s.ctx, &sandboxdv1.ExecRequest{SessionId: s.sid, Command: "test -S sock"})
		return err == nil && res.GetExitCode() == 0
	}, "no socket")
}

// A FIFO or a unix socket in the workspace gets InvalidArgument (HTTP 400) at once from every call that
// would open it: opening a FIFO used to block until the gateway's deadline (13.2).
func TestFilesAPIRefusesSpecialFilesAtOnce(t *testing.T) {
	for _, drv := range []string{"docker", "local"} {
		t.Run(drv, func(t *testing.T) {
			s := newFilesSandbox(t, drv)
			s.sh(t, "mkfifo fifo && ln -s fifo fifo-link")
			s.listenOnSocket(t)
			ops := s.ops()
			for path, kind := range map[string]string{"fifo": "FIFO", "fifo-link": "FIFO", "sock": "unix socket"} {
				for _, op := range []string{"read", "write", "append"} {
					ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
					begin := time.Now()
					err := ops[op](ctx, path)
					cancel()
					s.requireRefused(t, err, codes.InvalidArgument, kind)
					require.Less(t, time.Since(begin), 2*time.Second, "%s %s", op, path)
				}
			}
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			defer cancel()
			s.requireRefused(t, ops["tree"](ctx, "fifo"), codes.InvalidArgument, "not a directory")
			require.Equal(t, "fifo\n", s.sh(t, "test -p fifo && echo fifo"), "a refused write replaced the FIFO")
			// Deleting only removes the name.
			require.NoError(t, ops["delete"](ctx, "fifo"))
		})
	}
}

// A name over 255 bytes and a symlink loop are the caller's input: InvalidArgument (HTTP 400) saying so,
// never an internal error (13.6).
func TestFilesAPIFileSystemErrorsAreInvalidArgument(t *testing.T) {
	for _, drv := range []string{"docker", "local"} {
		t.Run(drv, func(t *testing.T) {
			s := newFilesSandbox(t, drv)
			s.sh(t, "ln -s self self && ln -s ping pong && ln -s pong ping && mkdir dir")
			long := strings.Repeat("n", 256)
			ops := s.ops()
			for _, tc := range []struct {
				path, why string
				ops       []string
			}{
				{long, "file name too long", []string{"read", "write", "append", "tree", "delete", "exec cwd"}},
				{"dir/" + long, "file name too long", []string{"read", "write", "tree", "delete", "exec cwd"}},
				{"self", "too many levels of symbolic links", []string{"read", "write", "append", "tree", "exec cwd"}},
				{"ping", "too many levels of symbolic links", []string{"read", "write", "tree", "exec cwd"}},
				{"self/x", "too many levels of symbolic links", []string{"read", "write", "tree", "delete", "exec cwd"}},
			} {
				for _, op := range tc.ops {
					s.requireRefused(t, ops[op](s.ctx, tc.path), codes.InvalidArgument, tc.why)
				}
			}
			// The loop itself is an ordinary symlink to delete.
			require.NoError(t, ops["delete"](s.ctx, "self"))
		})
	}
}

// Hard links: a link to a file outside the sandbox is refused (local driver; PermissionDenied, HTTP 403),
// while links among the sandbox's own files — `cp -l`, pnpm's store in the sandbox's home — read and write as
// any file (13.15).
func TestFilesAPIHardLinks(t *testing.T) {
	for _, drv := range []string{"docker", "local"} {
		t.Run(drv, func(t *testing.T) {
			s := newFilesSandbox(t, drv)
			read := func(p string) (string, error) {
				f, err := s.e.files.ReadFile(s.ctx, &sandboxdv1.ReadFileRequest{SessionId: s.sid, Path: p})
				return f.GetContent(), err
			}

			// pnpm's layout: a content-addressed store under $HOME hard-linked into node_modules/.pnpm.
			s.sh(t, `store="$HOME/.local/share/pnpm/store/v3/files/3f" && mkdir -p "$store" &&
				echo 'module.exports = leftPad;' > "$store/abcdef" &&
				mkdir -p node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad &&
				ln "$store/abcdef" node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad/index.js &&
				mkdir -p src && echo alpha > src/a.txt && cp -al src copy`)
			for _, p := range []string{"node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad/index.js", "src/a.txt", "copy/a.txt"} {
				got, err := read(p)
				require.NoError(t, err, p)
				require.NotEmpty(t, got)
			}
			_, err := s.e.files.WriteFile(s.ctx, &sandboxdv1.WriteFileRequest{SessionId: s.sid, Path: "copy/a.txt", Content: "beta\n"})
			require.NoError(t, err)
			got, err := read("src/a.txt")
			require.NoError(t, err)
			require.Equal(t, "beta\n", got, "a link of the workspace's own")

			if drv == "docker" {
				// In a container the workspace is a volume of its own: link(2) does not cross mounts, so a
				// file of the workspace can only share its inode with another file of the workspace —
				// not even with the container's own /tmp.
				res, err := s.e.sb.Exec(s.ctx, &sandboxdv1.ExecRequest{SessionId: s.sid, Command: "echo scratch > /tmp/scratch && ln /tmp/scratch scratch"})
				require.NoError(t, err)
				require.NotZero(t, res.GetExitCode())
				require.Contains(t, res.GetStderr(), "cross-device")
				return
			}
			// On the host, a file of the host's — here one next to the sandboxes' directories.
			secret := filepath.Join(s.e.vars["SANDBOXD_RUN_DIR"], "host-secret")
			require.NoError(t, os.WriteFile(secret, []byte("host secret\n"), 0o600))
			s.sh(t, "ln '"+secret+"' leak")
			_, err = read("leak")
			s.requireRefused(t, err, codes.PermissionDenied, "hard link to a file outside the sandbox")
			for _, appendTo := range []bool{false, true} {
				_, err = s.e.files.WriteFile(s.ctx, &sandboxdv1.WriteFileRequest{SessionId: s.sid, Path: "leak", Content: "owned", Append: appendTo})
				s.requireRefused(t, err, codes.PermissionDenied, "hard link to a file outside the sandbox")
			}
			b, err := os.ReadFile(secret)
			require.NoError(t, err)
			require.Equal(t, "host secret\n", string(b))
			_, err = s.e.files.DeleteFile(s.ctx, &sandboxdv1.DeleteFileRequest{SessionId: s.sid, Path: "leak"})
			require.NoError(t, err)
			_, err = os.Stat(secret)
			require.NoError(t, err, "deleting the link removed the host's file")
		})
	}
}
