package tools

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/store"
)

// What a command's result keeps of its output: the start and, larger, the end of each stream.
const (
	stdoutHead = 4 << 10
	stdoutTail = 10 << 10
	stderrHead = 2 << 10
	stderrTail = 6 << 10
	// Live output reaches the UI in pieces of about this size or this age, up to liveMax per call.
	livePiece    = 8 << 10
	liveInterval = 250 * time.Millisecond
	liveMax      = 1 << 20
)

type shellArgs struct {
	Command string            `json:"command"`
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env"`
	Timeout float64           `json:"timeout"`
}

type pythonArgs struct {
	Code    string  `json:"code"`
	Timeout float64 `json:"timeout"`
}

var commandSpecs = []*Spec{
	define(Spec{Name: SandboxShell, SideEffects: true, Watch: true,
		Description: "Run a shell command in the workspace (bash -lc, cwd relative to /workspace) and get its exit code, stdout " +
			"and stderr, kept apart. Long outputs keep their beginning and their end (where errors are) and say how much was " +
			"cut. The user watches the output live. Default timeout 120 s (at most 3600); on timeout the command is killed. " +
			"Do not start servers or watchers with it (no trailing &): use process_start.",
		Schema: `{"type":"object","properties":{"command":{"type":"string","minLength":1,"maxLength":65536},"cwd":{"type":"string","maxLength":4096},"env":{"type":"object","additionalProperties":{"type":"string"},"maxProperties":64},"timeout":{"type":"number","exclusiveMinimum":0,"maximum":3600}},"required":["command"],"additionalProperties":false}`},
		sandboxShell),
	define(Spec{Name: PythonRun, SideEffects: true, Watch: true,
		Description: "Run Python 3 code in the sandbox (cwd /workspace; pandas, numpy or matplotlib when installed — install " +
			"others with pip in sandbox_shell if you have it). You get stdout, stderr and the exit code as for a shell " +
			"command. Every PNG, JPEG, GIF or WebP image the code writes into the workspace (e.g. plt.savefig(\"charts/sales.png\")) " +
			"becomes an artifact the user sees; matplotlib figures left open are saved to charts/ for you. Default timeout " +
			"120 s (at most 600).",
		Schema: `{"type":"object","properties":{"code":{"type":"string","minLength":1,"maxLength":60000},"timeout":{"type":"number","exclusiveMinimum":0,"maximum":600}},"required":["code"],"additionalProperties":false}`},
		pythonRun),
}

// commandResult is a finished command as the model sees it.
type commandResult struct {
	exit     int32
	timedOut bool
	duration time.Duration
	stdout   *capture
	stderr   *capture
}

func (r commandResult) String() string { return r.render(true) }

// same is the result without its duration: see Result.Same.
func (r commandResult) same() string { return r.render(false) }

func (r commandResult) render(withDuration bool) string {
	var b strings.Builder
	switch {
	case r.timedOut && withDuration:
		fmt.Fprintf(&b, "timed out after %s and was killed\n", r.duration.Round(100*time.Millisecond))
	case r.timedOut:
		b.WriteString("timed out and was killed\n")
	case withDuration:
		fmt.Fprintf(&b, "exit code: %d (%s)\n", r.exit, r.duration.Round(10*time.Millisecond))
	default:
		fmt.Fprintf(&b, "exit code: %d\n", r.exit)
	}
	for _, s := range []struct {
		name string
		c    *capture
	}{{"stdout", r.stdout}, {"stderr", r.stderr}} {
		switch {
		case s.c.total == 0:
			fmt.Fprintf(&b, "%s: (empty)\n", s.name)
		case s.c.cut() > 0:
			fmt.Fprintf(&b, "%s (%s; the first %s and the last %s shown):\n%s\n", s.name, size(s.c.total), size(int64(s.c.headMax)),
				size(int64(s.c.tailMax)), strings.TrimRight(s.c.String(), "\n"))
		default:
			fmt.Fprintf(&b, "%s:\n%s\n", s.name, strings.TrimRight(s.c.String(), "\n"))
		}
	}
	return b.String()
}

// live streams a command's output to the user in pieces, each valid UTF-8.
type live struct {
	c       *Call
	stream  string
	buf     []byte
	sent    int
	stopped bool
}

func (l *live) add(stream string, p []byte) {
	if l.stream != stream {
		l.flush(true)
		l.stream = stream
	}
	l.buf = append(l.buf, p...)
	if len(l.buf) >= livePiece {
		l.flush(false)
	}
}

// flush sends what is buffered; unless final, a character cut at the end waits for its rest.
func (l *live) flush(final bool) {
	if len(l.buf) == 0 {
		return
	}
	n := len(l.buf)
	if !final {
		if trimmed := trimRuneEnd(l.buf); len(trimmed) > 0 {
			n = len(trimmed)
		}
	}
	piece := l.buf[:n]
	l.buf = append(l.buf[:0], l.buf[n:]...)
	if l.stopped {
		return
	}
	if l.sent+len(piece) > liveMax {
		l.stopped = true
		l.c.output(l.stream, fmt.Sprintf("\n[live output stops here after %s; the result keeps the end of the output]\n", size(liveMax)))
		return
	}
	l.sent += len(piece)
	l.c.output(l.stream, toText(piece))
}

// run executes a command through sandboxd's ExecStream: the output streams to the user as it comes
// and the model gets the head and tail of each stream.
func (x *Executor) run(ctx context.Context, c *Call, req *sandboxdv1.ExecStreamRequest) (commandResult, error) {
	res := commandResult{stdout: newCapture(stdoutHead, stdoutTail), stderr: newCapture(stderrHead, stderrTail)}
	begin := time.Now()
	st, err := x.sandboxes.ExecStream(ctx, req)
	if err != nil {
		return res, err
	}
	c.watch.live(ctx)
	type msg struct {
		m   *sandboxdv1.ExecStreamResponse
		err error
	}
	msgs := make(chan msg, 16)
	go func() {
		defer close(msgs)
		for {
			m, err := st.Recv()
			msgs <- msg{m, err}
			if err != nil {
				return
			}
		}
	}()
	out := &live{c: c}
	tick := time.NewTicker(liveInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			out.flush(false)
			continue
		case r := <-msgs:
			if errors.Is(r.err, io.EOF) {
				out.flush(true)
				res.duration = time.Since(begin)
				return res, nil
			}
			if r.err != nil {
				out.flush(true)
				res.duration = time.Since(begin)
				if status.Code(r.err) == codes.DeadlineExceeded && ctx.Err() == nil {
					res.timedOut = true
					return res, nil
				}
				return res, r.err
			}
			switch ev := r.m.GetEvent().(type) {
			case *sandboxdv1.ExecStreamResponse_Stdout:
				res.stdout.Write(ev.Stdout)
				out.add("stdout", ev.Stdout)
			case *sandboxdv1.ExecStreamResponse_Stderr:
				res.stderr.Write(ev.Stderr)
				out.add("stderr", ev.Stderr)
			case *sandboxdv1.ExecStreamResponse_Exit:
				res.exit = ev.Exit.GetExitCode()
			}
		}
	}
}

func sandboxShell(ctx context.Context, x *Executor, c *Call, a *shellArgs) (Result, error) {
	timeout := a.Timeout
	if timeout == 0 {
		timeout = 120
	}
	r, err := x.run(ctx, c, &sandboxdv1.ExecStreamRequest{SessionId: c.SessionID, Command: a.Command, Cwd: a.Cwd, Env: a.Env, Timeout: timeout})
	if err != nil {
		return Result{}, err
	}
	return Result{Output: r.String(), Same: r.same(), IsError: r.exit != 0 || r.timedOut}, nil
}

// pythonWrapper runs the code read from stdin as __main__, with matplotlib (when installed) drawing
// off-screen and saving the figures the code leaves open, as a notebook would show them. It holds no
// single quote: it travels inside one.
const pythonWrapper = `import sys, os
src = sys.stdin.read()
sys.stdin = open(os.devnull)
plt = None
try:
    import importlib.util
    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.figure, matplotlib.pyplot as plt
        _savefig = matplotlib.figure.Figure.savefig
        def _mark(self, *a, **k):
            self._mgx_saved = True
            return _savefig(self, *a, **k)
        matplotlib.figure.Figure.savefig = _mark
except Exception:
    plt = None
sys.argv = ["python_run"]
try:
    exec(compile(src, "<python_run>", "exec"), {"__name__": "__main__"})
finally:
    if plt is not None:
        left = [n for n in plt.get_fignums() if not getattr(plt.figure(n), "_mgx_saved", False)]
        if left:
            os.makedirs("charts", exist_ok=True)
            stamp = os.environ.get("MGX_RUN_STAMP", "run")
            for i, n in enumerate(left, 1):
                name = "charts/figure-%s-%d.png" % (stamp, i)
                plt.figure(n).savefig(name, dpi=110, bbox_inches="tight")
                print("[saved open figure to %s]" % name, file=sys.stderr)
`

// imageTypes are the artifact types python_run collects: raster images only, since an SVG is a
// document that could run script where it is opened.
var imageTypes = map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}

const maxArtifactsPerCall = 8

func pythonRun(ctx context.Context, x *Executor, c *Call, a *pythonArgs) (Result, error) {
	timeout := a.Timeout
	if timeout == 0 {
		timeout = 120
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	stamp := hex.EncodeToString(rb[:])
	delim := "MGX_PY_" + strings.ToUpper(stamp)
	for strings.Contains(a.Code, delim) {
		delim += "_"
	}
	code := a.Code
	if !strings.HasSuffix(code, "\n") {
		code += "\n"
	}
	// The code travels as a quoted here-document: the shell expands nothing in it.
	cmd := "python3 -u -c '" + pythonWrapper + "' <<'" + delim + "'\n" + code + delim + "\n"
	r, err := x.run(ctx, c, &sandboxdv1.ExecStreamRequest{SessionId: c.SessionID, Command: cmd, Timeout: timeout,
		Env: map[string]string{"MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "MGX_RUN_STAMP": stamp}})
	if err != nil {
		return Result{}, err
	}
	out := r.String()
	if r.exit == 127 && strings.Contains(r.stderr.String(), "python3") {
		out += "python3 is not installed in this sandbox.\n"
	}
	res := Result{IsError: r.exit != 0 || r.timedOut}
	var notes []string
	for _, ch := range c.watch.collect(ctx) {
		ct, ok := imageTypes[strings.ToLower(path.Ext(ch.GetPath()))]
		if !ok || ch.GetDirectory() || ch.GetKind() == "deleted" {
			continue
		}
		if len(res.Artifacts) == maxArtifactsPerCall {
			notes = append(notes, fmt.Sprintf("%s was not kept as an artifact (at most %d per call)", ch.GetPath(), maxArtifactsPerCall))
			continue
		}
		art, err := x.saveWorkspaceImage(ctx, c, ch.GetPath(), ct)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s could not be kept as an artifact: %s", ch.GetPath(), describe(err)))
			continue
		}
		res.Artifacts = append(res.Artifacts, art)
	}
	if len(res.Artifacts) > 0 {
		var names []string
		for _, art := range res.Artifacts {
			names = append(names, art.Source)
		}
		out += fmt.Sprintf("Images shown to the user as artifacts: %s.\n", strings.Join(names, ", "))
	}
	for _, n := range notes {
		out += n + ".\n"
	}
	res.Output = out
	return res, nil
}

// saveWorkspaceImage stores an image file of the workspace as an artifact of the call.
func (x *Executor) saveWorkspaceImage(ctx context.Context, c *Call, p, contentType string) (store.Artifact, error) {
	f, err := x.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: c.SessionID, Path: p})
	if err != nil {
		return store.Artifact{}, err
	}
	data := []byte(f.GetContent())
	if f.GetEncoding() == "base64" {
		if data, err = base64.StdEncoding.DecodeString(f.GetContent()); err != nil {
			return store.Artifact{}, err
		}
	}
	if !looksLike(contentType, data) {
		return store.Artifact{}, fmt.Errorf("its content is not a %s image", contentType)
	}
	w, h := imageSize(data)
	return x.opts.Artifacts.SaveArtifact(ctx, store.Artifact{SessionID: c.SessionID, RunID: c.RunID, Agent: c.Agent, Tool: c.Tool,
		CallID: c.ID, Name: path.Base(p), ContentType: contentType, Source: p, Width: w, Height: h}, data)
}

// looksLike checks an image's magic number against its type, so a file merely named .png is not
// served as an image.
func looksLike(contentType string, b []byte) bool {
	switch contentType {
	case "image/png":
		return strings.HasPrefix(string(b), "\x89PNG\r\n\x1a\n")
	case "image/jpeg":
		return strings.HasPrefix(string(b), "\xff\xd8\xff")
	case "image/gif":
		return strings.HasPrefix(string(b), "GIF87a") || strings.HasPrefix(string(b), "GIF89a")
	case "image/webp":
		return len(b) > 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP"
	}
	return false
}
