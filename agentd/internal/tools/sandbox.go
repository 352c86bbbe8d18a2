package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/authn"
)

// maxOutput bounds what a tool result gives back to the model.
const maxOutput = 16 << 10

// Result is a tool call's observation for the model.
type Result struct {
	Output  string
	IsError bool
	// Paths are workspace files the call changed (file_change events).
	Paths []string
}

// Call is one sandbox tool call.
type Call struct {
	SessionID string
	OwnerID   string
	Tool      string
	Args      string
	// WritePrefix confines file_write (doc-writing roles).
	WritePrefix string
}

// Executor runs sandbox tools through sandboxd's gRPC API, as the session's owner.
type Executor struct {
	sandboxes sandboxdv1.SandboxServiceClient
	files     sandboxdv1.FileServiceClient
	procs     sandboxdv1.ProcessServiceClient
}

// NewExecutor returns an executor over a connection to sandboxd.
func NewExecutor(cc grpc.ClientConnInterface) *Executor {
	return &Executor{
		sandboxes: sandboxdv1.NewSandboxServiceClient(cc),
		files:     sandboxdv1.NewFileServiceClient(cc),
		procs:     sandboxdv1.NewProcessServiceClient(cc),
	}
}

func fail(format string, a ...any) Result {
	return Result{Output: fmt.Sprintf(format, a...), IsError: true}
}

// Execute runs the call. Problems of the call itself (bad arguments, a failing command, sandboxd
// refusing) are observations with IsError; only the context's end is returned as an error, so a
// cancelled run stops instead of telling the model about it.
func (x *Executor) Execute(ctx context.Context, c Call) (Result, error) {
	spec, ok := Lookup(c.Tool)
	if !ok || spec.Control {
		return fail("unknown sandbox tool %q", c.Tool), nil
	}
	ctx = authn.WithUser(ctx, c.OwnerID)
	res, err := x.execute(ctx, spec, c)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return fail("%s failed: %s", c.Tool, describe(err)), nil
	}
	if len(res.Output) > maxOutput {
		res.Output = res.Output[:maxOutput] + "\n…(truncated)"
	}
	return res, nil
}

func describe(err error) string {
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.Unavailable {
			return "the sandbox service is unavailable"
		}
		return st.Message()
	}
	return err.Error()
}

func (x *Executor) execute(ctx context.Context, spec *Spec, c Call) (Result, error) {
	switch c.Tool {
	case FileWrite:
		var a struct{ Path, Content string }
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		p := path.Clean(strings.TrimPrefix(a.Path, "/workspace/"))
		if c.WritePrefix != "" && !strings.HasPrefix(p+"/", c.WritePrefix) && !strings.HasPrefix(p, c.WritePrefix) {
			return fail("you may only write under %s", c.WritePrefix), nil
		}
		r, err := x.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: c.SessionID, Path: p, Content: a.Content})
		if err != nil {
			return Result{}, err
		}
		return Result{Output: fmt.Sprintf("wrote %s (%d bytes)", r.GetPath(), int64(r.GetSize())), Paths: []string{r.GetPath()}}, nil
	case FileRead:
		var a struct{ Path string }
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		r, err := x.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: c.SessionID, Path: a.Path})
		if err != nil {
			return Result{}, err
		}
		return Result{Output: r.GetContent()}, nil
	case FileList:
		var a struct {
			Path  string
			Depth int32
		}
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		if a.Depth == 0 {
			a.Depth = 3
		}
		r, err := x.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: c.SessionID, Root: a.Path, Depth: a.Depth})
		if err != nil {
			return Result{}, err
		}
		var b strings.Builder
		var walk func([]*sandboxdv1.FileEntry, string)
		walk = func(es []*sandboxdv1.FileEntry, indent string) {
			for _, e := range es {
				suffix := ""
				if e.GetType() == "directory" {
					suffix = "/"
				}
				fmt.Fprintf(&b, "%s%s%s\n", indent, e.GetName(), suffix)
				walk(e.GetChildren(), indent+"  ")
			}
		}
		walk(r.GetEntries(), "")
		if b.Len() == 0 {
			return Result{Output: "(empty)"}, nil
		}
		return Result{Output: b.String()}, nil
	case SandboxShell:
		var a struct {
			Command string
			Cwd     string
			Env     map[string]string
			Timeout float64
		}
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		if a.Timeout == 0 {
			a.Timeout = 120
		}
		r, err := x.sandboxes.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: c.SessionID, Command: a.Command, Cwd: a.Cwd, Env: a.Env, Timeout: a.Timeout})
		if status.Code(err) == codes.DeadlineExceeded && ctx.Err() == nil {
			return fail("command timed out after %gs and was killed", a.Timeout), nil
		}
		if err != nil {
			return Result{}, err
		}
		out := fmt.Sprintf("exit_code: %d\nstdout:\n%s\nstderr:\n%s", r.GetExitCode(), r.GetStdout(), r.GetStderr())
		return Result{Output: out, IsError: r.GetExitCode() != 0}, nil
	case ProcessStart:
		var a struct {
			Name, Command, Cwd string
			Env                map[string]string
		}
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		r, err := x.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: c.SessionID, Name: a.Name, Command: a.Command, Cwd: a.Cwd, Env: a.Env})
		if err != nil {
			return Result{}, err
		}
		return Result{Output: fmt.Sprintf("started %s: %s", a.Name, r.String())}, nil
	case ProcessLogs:
		var a struct{ Name string }
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		st, err := x.procs.GetProcessLogs(ctx, &sandboxdv1.GetProcessLogsRequest{SessionId: c.SessionID, Name: a.Name})
		if err != nil {
			return Result{}, err
		}
		var b []byte
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return Result{}, err
			}
			b = append(b, m.GetData()...)
			if len(b) > 4*maxOutput {
				b = b[len(b)-maxOutput:]
			}
		}
		if len(b) > maxOutput {
			b = b[len(b)-maxOutput:]
		}
		return Result{Output: string(b)}, nil
	case ProcessStop:
		var a struct{ Name string }
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		if _, err := x.procs.SignalProcess(ctx, &sandboxdv1.SignalProcessRequest{SessionId: c.SessionID, Name: a.Name, Signal: "TERM"}); err != nil {
			return Result{}, err
		}
		return Result{Output: "stopped " + a.Name}, nil
	case PreviewURL:
		var a struct{ Port int32 }
		if err := spec.Parse(c.Args, &a); err != nil {
			return fail("%v", err), nil
		}
		return x.preview(ctx, c.SessionID, a.Port)
	}
	return fail("unknown sandbox tool %q", c.Tool), nil
}

// preview polls briefly: a server just started may take a moment to listen.
func (x *Executor) preview(ctx context.Context, sid string, port int32) (Result, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := x.sandboxes.GetPreview(ctx, &sandboxdv1.GetPreviewRequest{SessionId: sid})
		if err != nil {
			return Result{}, err
		}
		var urls []string
		for _, p := range r.GetPreviews() {
			if port == 0 || p.GetContainerPort() == port {
				urls = append(urls, fmt.Sprintf("port %d: %s", p.GetContainerPort(), p.GetUrl()))
			}
		}
		if len(urls) > 0 {
			return Result{Output: strings.Join(urls, "\n")}, nil
		}
		if time.Now().After(deadline) {
			return fail("no preview is available for port %d: is a server listening on it?", port), nil
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
