package app_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// TestConformance runs one suite against both drivers: everything the API
// promises must hold whichever driver runs the sandbox.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, drv := range []string{"docker", "local"} {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			e := start(t, drv, map[string]string{"SANDBOX_OUTPUT_LIMIT": "65536"})
			conformance(t, e, drv)
		})
	}
}

func conformance(t *testing.T, e *env, drv string) {
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	launch, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	require.Equal(t, drv, launch.GetSandbox().GetDriver())
	require.Equal(t, "running", launch.GetSandbox().GetState())
	require.NotEmpty(t, launch.GetLogs())

	exec := func(t *testing.T, cmd string, mods ...func(*sandboxdv1.ExecRequest)) (*sandboxdv1.ExecResponse, error) {
		req := &sandboxdv1.ExecRequest{SessionId: sid, Command: cmd}
		for _, m := range mods {
			m(req)
		}
		return e.sb.Exec(ctx, req)
	}

	t.Run("exec", func(t *testing.T) {
		res, err := exec(t, "echo hello; echo oops >&2; exit 3")
		require.NoError(t, err)
		require.Equal(t, "hello\n", res.GetStdout())
		require.Equal(t, "oops\n", res.GetStderr())
		require.EqualValues(t, 3, res.GetExitCode())

		res, err = exec(t, "mkdir -p sub && cd sub && echo \"$GREETING\" && pwd", func(r *sandboxdv1.ExecRequest) { r.Env = map[string]string{"GREETING": "hi"} })
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(res.GetStdout(), "hi\n"), res.GetStdout())
		res, err = exec(t, "pwd", func(r *sandboxdv1.ExecRequest) { r.Cwd = "sub" })
		require.NoError(t, err)
		require.True(t, strings.HasSuffix(strings.TrimSpace(res.GetStdout()), "/sub"), res.GetStdout())
	})

	t.Run("home is the sandbox's own and writable", func(t *testing.T) {
		res, err := exec(t, `test -d "$HOME" && test -w "$HOME" && echo "$HOME"`)
		require.NoError(t, err)
		require.EqualValues(t, 0, res.GetExitCode(), res.GetStderr())
		if drv == "local" {
			// Never the host user's home: a sandbox must not run (or write) the developer's dotfiles.
			hostHome, _ := os.UserHomeDir()
			require.NotEqual(t, hostHome, strings.TrimSpace(res.GetStdout()))
		}
	})

	t.Run("bad env name is InvalidArgument", func(t *testing.T) {
		_, err := exec(t, "true", func(r *sandboxdv1.ExecRequest) { r.Env = map[string]string{"A-B": "x"} })
		require.Equal(t, codes.InvalidArgument, code(err))
	})

	t.Run("timeout kills the process group", func(t *testing.T) {
		begin := time.Now()
		_, err := exec(t, "sleep 300 & echo $! > bg.pid; echo $$ > main.pid; sleep 300", func(r *sandboxdv1.ExecRequest) { r.Timeout = 1 })
		require.Equal(t, codes.DeadlineExceeded, code(err), "%v", err)
		require.Less(t, time.Since(begin), 10*time.Second)
		// Verified from inside the sandbox: neither the command nor its
		// background child survives.
		eventually(t, 5*time.Second, func() bool {
			res, err := exec(t, `for p in $(cat bg.pid main.pid); do if kill -0 $p 2>/dev/null && ! grep -q '^State:.*Z' /proc/$p/status; then echo alive; fi; done`)
			return err == nil && res.GetStdout() == ""
		}, "timed-out processes still running")
	})

	t.Run("background child holding stdout does not hang", func(t *testing.T) {
		begin := time.Now()
		res, err := exec(t, "sleep 30 & echo started", func(r *sandboxdv1.ExecRequest) { r.Timeout = 20 })
		require.NoError(t, err)
		require.Equal(t, "started\n", res.GetStdout())
		require.Less(t, time.Since(begin), 3*time.Second)
	})

	t.Run("output is capped", func(t *testing.T) {
		res, err := exec(t, "i=0; while [ $i -lt 3000 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done")
		require.NoError(t, err)
		require.True(t, res.GetTruncated())
		require.Len(t, res.GetStdout(), 65536)
	})

	t.Run("cwd escapes are InvalidArgument", func(t *testing.T) {
		_, err := exec(t, "ln -sfn / escape-link")
		require.NoError(t, err)
		for _, cwd := range []string{"..", "../..", "/etc", "a/../../x", "/workspace/../etc", "escape-link"} {
			_, err := exec(t, "pwd", func(r *sandboxdv1.ExecRequest) { r.Cwd = cwd })
			require.Equal(t, codes.InvalidArgument, code(err), "cwd %q: %v", cwd, err)
		}
		_, err = exec(t, "pwd", func(r *sandboxdv1.ExecRequest) { r.Cwd = "/workspace/sub" })
		require.NoError(t, err)
	})

	t.Run("exec stream", func(t *testing.T) {
		st, err := e.sb.ExecStream(ctx, &sandboxdv1.ExecStreamRequest{SessionId: sid, Command: "for i in 1 2 3; do echo line$i; done; echo e >&2; exit 2"})
		require.NoError(t, err)
		var out, errb strings.Builder
		var exit *sandboxdv1.ExecExit
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			out.Write(m.GetStdout())
			errb.Write(m.GetStderr())
			if m.GetExit() != nil {
				exit = m.GetExit()
			}
		}
		require.Equal(t, "line1\nline2\nline3\n", out.String())
		require.Equal(t, "e\n", errb.String())
		require.NotNil(t, exit)
		require.EqualValues(t, 2, exit.GetExitCode())
	})

	t.Run("files", func(t *testing.T) {
		_, err := e.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "src/app/main.txt", Content: "hello\n"})
		require.NoError(t, err)
		w, err := e.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "/workspace/src/app/main.txt", Content: "more\n", Append: true})
		require.NoError(t, err)
		require.EqualValues(t, 11, w.GetSize())
		f, err := e.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "src/app/main.txt"})
		require.NoError(t, err)
		require.Equal(t, "hello\nmore\n", f.GetContent())
		require.Equal(t, "main.txt", f.GetName())
		require.Equal(t, "src/app/main.txt", f.GetPath())
		require.InDelta(t, float64(time.Now().Unix()), f.GetModifiedAt(), 120)

		bin := []byte{0, 1, 2, 0xff, 0xfe, 'x'}
		_, err = e.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "bin.dat", Content: base64.StdEncoding.EncodeToString(bin), Encoding: "base64"})
		require.NoError(t, err)
		f, err = e.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "bin.dat"})
		require.NoError(t, err)
		require.Equal(t, "base64", f.GetEncoding())
		got, _ := base64.StdEncoding.DecodeString(f.GetContent())
		require.Equal(t, bin, got)

		_, err = exec(t, "mkdir -p .hidden && touch .hidden/x")
		require.NoError(t, err)
		tree, err := e.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: sid, Depth: 3})
		require.NoError(t, err)
		require.Equal(t, "", tree.GetRoot())
		var src *sandboxdv1.FileEntry
		for _, en := range tree.GetEntries() {
			require.NotEqual(t, ".hidden", en.GetName())
			if en.GetName() == "src" {
				src = en
			}
		}
		require.NotNil(t, src)
		require.Equal(t, "directory", src.GetType())
		require.Equal(t, "src/app", src.GetChildren()[0].GetPath())
		require.Equal(t, "src/app/main.txt", src.GetChildren()[0].GetChildren()[0].GetPath())
		tree, err = e.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: sid, Depth: 1, IncludeHidden: true})
		require.NoError(t, err)
		names := []string{}
		for _, en := range tree.GetEntries() {
			names = append(names, en.GetName())
			require.Empty(t, en.GetChildren())
		}
		require.Contains(t, names, ".hidden")

		for _, p := range []string{"../etc/passwd", "/etc/passwd", "escape-link/etc/passwd"} {
			_, err := e.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: p})
			require.Equal(t, codes.InvalidArgument, code(err), "path %q: %v", p, err)
			_, err = e.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: p, Content: "x"})
			require.Equal(t, codes.InvalidArgument, code(err), "path %q: %v", p, err)
		}
		_, err = e.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "nope.txt"})
		require.Equal(t, codes.NotFound, code(err))
		_, err = e.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "src"})
		require.Equal(t, codes.FailedPrecondition, code(err))

		d, err := e.files.DeleteFile(ctx, &sandboxdv1.DeleteFileRequest{SessionId: sid, Path: "src"})
		require.NoError(t, err)
		require.True(t, d.GetDeleted())
		_, err = e.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "src/app/main.txt"})
		require.Equal(t, codes.NotFound, code(err))
		// Deleting the link removes the link, never its target.
		_, err = e.files.DeleteFile(ctx, &sandboxdv1.DeleteFileRequest{SessionId: sid, Path: "escape-link"})
		require.NoError(t, err)
	})

	t.Run("processes, ports and preview over HTTP and WebSocket", func(t *testing.T) {
		installWsecho(ctx, t, e, sid)
		port := 18000 + rand.IntN(2000)
		p, err := e.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: sid, Name: "web", Command: fmt.Sprintf("echo booting; exec ./wsecho -addr 127.0.0.1:%d", port)})
		require.NoError(t, err)
		require.Equal(t, "running", p.GetProcess().GetState())
		_, err = e.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: sid, Name: "web", Command: "true"})
		require.Equal(t, codes.AlreadyExists, code(err))

		eventually(t, 10*time.Second, func() bool {
			ps, err := e.procs.ListPorts(ctx, &sandboxdv1.ListPortsRequest{SessionId: sid})
			if err != nil {
				return false
			}
			for _, lp := range ps.GetPorts() {
				if lp.GetPort() == int32(port) {
					return true
				}
			}
			return false
		}, "port never listed")

		logs, err := e.procs.GetProcessLogs(ctx, &sandboxdv1.GetProcessLogsRequest{SessionId: sid, Name: "web"})
		require.NoError(t, err)
		m, err := logs.Recv()
		require.NoError(t, err)
		require.Equal(t, "booting\n", string(m.GetData()))
		require.EqualValues(t, 8, m.GetNextOffset())

		pv, err := e.sb.GetPreview(ctx, &sandboxdv1.GetPreviewRequest{SessionId: sid})
		require.NoError(t, err)
		require.True(t, pv.GetAvailable())
		var purl string
		for _, pp := range pv.GetPreviews() {
			if pp.GetContainerPort() == int32(port) {
				purl = pp.GetUrl()
			}
		}
		require.NotEmpty(t, purl)
		u, err := url.Parse(purl)
		require.NoError(t, err)
		require.Regexp(t, fmt.Sprintf(`^p%d-[a-z2-7]{52}\.preview\.localhost:8000$`, port), u.Host)
		previewTest(t, e.app.PreviewAddr(), u)

		// A follower sees the log from the offset on and ends when the
		// process exits.
		follow, err := e.procs.GetProcessLogs(ctx, &sandboxdv1.GetProcessLogsRequest{SessionId: sid, Name: "web", Offset: 3, Follow: true})
		require.NoError(t, err)
		followed := make(chan string, 1)
		go func() {
			var b strings.Builder
			for {
				m, err := follow.Recv()
				if err != nil {
					followed <- b.String()
					return
				}
				b.Write(m.GetData())
			}
		}()
		_, err = e.procs.SignalProcess(ctx, &sandboxdv1.SignalProcessRequest{SessionId: sid, Name: "web", Signal: "TERM"})
		require.NoError(t, err)
		select {
		case got := <-followed:
			require.True(t, strings.HasPrefix(got, "ting\n"), got)
		case <-time.After(10 * time.Second):
			t.Fatal("log follower did not end when the process exited")
		}
		eventually(t, 10*time.Second, func() bool {
			ps, err := e.procs.ListProcesses(ctx, &sandboxdv1.ListProcessesRequest{SessionId: sid})
			return err == nil && len(ps.GetProcesses()) == 1 && ps.GetProcesses()[0].GetState() == "exited"
		}, "process did not exit on TERM")
	})

	t.Run("concurrent first launches create one sandbox", func(t *testing.T) {
		other := newSession()
		ids := make(chan string, 4)
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: other})
				if assert.NoError(t, err) {
					ids <- l.GetSandbox().GetContainerId()
				}
			}()
		}
		wg.Wait()
		close(ids)
		first := <-ids
		for id := range ids {
			require.Equal(t, first, id)
		}
		_, err := e.sb.DestroySandbox(ctx, &sandboxdv1.DestroySandboxRequest{SessionId: other, Forget: true})
		require.NoError(t, err)
	})

	t.Run("another user's session is NotFound", func(t *testing.T) {
		other := as(t.Context(), "user-b")
		_, err := e.sb.Exec(other, &sandboxdv1.ExecRequest{SessionId: sid, Command: "true"})
		require.Equal(t, codes.NotFound, code(err))
		_, err = e.sb.LaunchSandbox(other, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		require.Equal(t, codes.NotFound, code(err))
		_, err = e.files.ReadFile(other, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "bin.dat"})
		require.Equal(t, codes.NotFound, code(err))
		_, err = e.sb.DestroySandbox(other, &sandboxdv1.DestroySandboxRequest{SessionId: sid})
		require.Equal(t, codes.NotFound, code(err))
		list, err := e.sb.ListSandboxes(other, &sandboxdv1.ListSandboxesRequest{})
		require.NoError(t, err)
		require.Empty(t, list.GetSandboxes())
		_, err = e.sb.ListSandboxes(other, &sandboxdv1.ListSandboxesRequest{AllUsers: true})
		require.Equal(t, codes.PermissionDenied, code(err))
	})

	t.Run("destroy, re-create on demand, forget", func(t *testing.T) {
		list, err := e.sb.ListSandboxes(ctx, &sandboxdv1.ListSandboxesRequest{})
		require.NoError(t, err)
		require.Len(t, list.GetSandboxes(), 1)
		d, err := e.sb.DestroySandbox(ctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid})
		require.NoError(t, err)
		require.True(t, d.GetStopped())
		_, err = e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
		require.Equal(t, codes.NotFound, code(err))
		// The owner's next call re-creates it.
		res, err := exec(t, "echo back")
		require.NoError(t, err)
		require.Equal(t, "back\n", res.GetStdout())
		g, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
		require.NoError(t, err)
		require.True(t, g.GetSandbox().GetCreatedAt().AsTime().After(launch.GetSandbox().GetCreatedAt().AsTime()))

		all, err := e.sb.DestroyAllSandboxes(ctx, &sandboxdv1.DestroyAllSandboxesRequest{})
		require.NoError(t, err)
		require.Equal(t, []string{sid}, all.GetStoppedSessions())
		_, err = e.sb.DestroySandbox(ctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid, Forget: true})
		require.NoError(t, err)
		_, err = exec(t, "true")
		require.Equal(t, codes.NotFound, code(err))
		insts, err := e.app.Driver.List(t.Context())
		require.NoError(t, err)
		require.Empty(t, insts)
	})
}

// previewTest exercises a preview URL against the preview listener, as the gateway forwards it
// (Host preserved): the capability in the host name opens the page, its assets and its WebSocket,
// with no cookie, no token and no redirect; the same host with a forged capability opens nothing.
func previewTest(t *testing.T, previewAddr string, u *url.URL) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	type answer struct {
		status int
		header http.Header
		body   string
	}
	get := func(host, path string) answer {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+previewAddr+path, nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := noRedirect.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return answer{resp.StatusCode, resp.Header, string(b)}
	}
	label, rest, _ := strings.Cut(u.Host, ".")
	// One character in the middle of the MAC (the last one also holds unused bits).
	forged := label[:len(label)-3] + map[bool]string{true: "b", false: "a"}[label[len(label)-3] == 'a'] + label[len(label)-2:] + "." + rest
	require.Equal(t, http.StatusUnauthorized, get(forged, "/").status)

	for _, path := range []string{"/", "/index.html", "/assets/app.js?v=1"} {
		resp := get(u.Host, path)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		require.Empty(t, resp.header.Values("Set-Cookie"), "no cookie is needed or set")
		p, _, _ := strings.Cut(path, "?")
		require.Contains(t, resp.body, "hello from the sandbox: host="+u.Host+" path="+p)
	}

	// WebSocket through the same origin, as HMR does: the host is the whole credential.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// The handshake response's body is the connection, which c owns.
	c, _, err := websocket.Dial(ctx, "ws://"+previewAddr+"/ws", &websocket.DialOptions{Host: u.Host}) //nolint:bodyclose // see above
	require.NoError(t, err)
	defer func() { _ = c.CloseNow() }()
	for _, msg := range []string{"ping", "hmr update"} {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, msg, string(got))
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}
