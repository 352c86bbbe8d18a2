package brief_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/brief"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
)

// workspace answers sandboxd's file, process and preview calls for a Vite project after `npm
// install`: thousands of dependency entries next to a few sources. (The real sandboxd is exercised
// by the e2e follow-up test; this one pins the brief's shape and bounds.)
type workspace struct {
	sandboxdv1.UnimplementedSandboxServiceServer
	sandboxdv1.UnimplementedFileServiceServer
	sandboxdv1.UnimplementedProcessServiceServer
	owners []string
	down   bool
}

const sid = "0b5f7c1e-7a53-4c1a-9d0e-3f1b2c4d5e6f"

func file(path string, size float64) *sandboxdv1.FileEntry {
	name := path[strings.LastIndex(path, "/")+1:]
	return &sandboxdv1.FileEntry{Name: name, Path: path, Type: "file", Size: size}
}

func dir(path string, children ...*sandboxdv1.FileEntry) *sandboxdv1.FileEntry {
	name := path[strings.LastIndex(path, "/")+1:]
	return &sandboxdv1.FileEntry{Name: name, Path: path, Type: "directory", Children: children}
}

func (w *workspace) GetFileTree(ctx context.Context, r *sandboxdv1.GetFileTreeRequest) (*sandboxdv1.GetFileTreeResponse, error) {
	uid, _ := authn.UserID(ctx)
	w.owners = append(w.owners, uid)
	if w.down {
		return nil, status.Error(codes.Unavailable, "connection refused to 10.0.0.7:8201")
	}
	switch r.GetRoot() {
	case "":
		return &sandboxdv1.GetFileTreeResponse{Entries: []*sandboxdv1.FileEntry{
			dir("docs"), dir("node_modules"), dir("src"), dir("dist"), file("index.html", 400), file("package.json", 812), file("vite.config.js", 230),
		}}, nil
	case "src":
		return &sandboxdv1.GetFileTreeResponse{Entries: []*sandboxdv1.FileEntry{dir("src/components", file("src/components/Header.jsx", 2100)), file("src/App.jsx", 1500), file("src/main.jsx", 300)}}, nil
	case "docs":
		return &sandboxdv1.GetFileTreeResponse{Entries: []*sandboxdv1.FileEntry{file("docs/prd.md", 5200), file("docs/design.md", 3100)}}, nil
	case "node_modules", "dist":
		var many []*sandboxdv1.FileEntry
		for i := range 5000 {
			many = append(many, file(fmt.Sprintf("%s/pkg%d/index.js", r.GetRoot(), i), 10))
		}
		return &sandboxdv1.GetFileTreeResponse{Entries: many, Truncated: true}, nil
	}
	return nil, status.Error(codes.NotFound, "no such directory")
}

func (w *workspace) ListProcesses(context.Context, *sandboxdv1.ListProcessesRequest) (*sandboxdv1.ListProcessesResponse, error) {
	return &sandboxdv1.ListProcessesResponse{Processes: []*sandboxdv1.Process{
		{Name: "install", Command: "npm install", State: "exited", ExitCode: 0},
		{Name: "dev", Command: "npm run dev -- --host 0.0.0.0", State: "running", Pid: 4242},
	}}, nil
}

func (w *workspace) ListPorts(context.Context, *sandboxdv1.ListPortsRequest) (*sandboxdv1.ListPortsResponse, error) {
	return &sandboxdv1.ListPortsResponse{Ports: []*sandboxdv1.ListeningPort{{Port: 5173, Address: "0.0.0.0"}}}, nil
}

func (w *workspace) GetPreview(context.Context, *sandboxdv1.GetPreviewRequest) (*sandboxdv1.GetPreviewResponse, error) {
	return &sandboxdv1.GetPreviewResponse{Available: true, Previews: []*sandboxdv1.PortPreview{
		{ContainerPort: 5173, Url: "http://p5173-s1.preview.localhost:8000/?token=t"},
	}}, nil
}

func serve(t *testing.T, w *workspace) *brief.Builder {
	t.Helper()
	srv, _, err := grpcserver.New(grpcserver.Options{InternalToken: "t", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	sandboxdv1.RegisterSandboxServiceServer(srv, w)
	sandboxdv1.RegisterFileServiceServer(srv, w)
	sandboxdv1.RegisterProcessServiceServer(srv, w)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpcclient.Dial(lis.Addr().String(), grpcclient.Options{InternalToken: "t"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return brief.New(cc)
}

func TestBrief(t *testing.T) {
	w := &workspace{}
	b := serve(t, w)
	in := workflow.BriefInput{SessionID: sid, OwnerID: "alice", Original: "Build a todo app with Vite.", Request: "Make the header blue.",
		Plan: []workflow.Task{
			{ID: "t1", Title: "Write the PRD", Assignee: "emma", Status: "done"},
			{ID: "t2", Title: "Build the app", Assignee: "alex", Status: "in_progress", DependsOn: []string{"t1"}, Note: "Vite + React"},
		},
		Last: workflow.LastRun{Status: "stopped", Reason: "the step limit (40 model calls of Mike) was reached", Summary: "The app runs; the header is next."}}
	got := b.Brief(t.Context(), in)
	t.Log(got)
	for _, want := range []string{
		"The user's first request in this session: Build a todo app with Vite.", "Their latest message: Make the header blue.",
		"src/", "    App.jsx (1.5 KB)", "      Header.jsx (2.1 KB)", "index.html (400 B)",
		"node_modules/ (dependencies, not listed)", "dist/ (build output, not listed)",
		"Documents under docs/: docs/prd.md (5.1 KB), docs/design.md (3.0 KB)",
		"dev — running (pid 4242): npm run dev -- --host 0.0.0.0", "install — exited with code 0",
		"port 5173 (bound to 0.0.0.0) → preview http://p5173-s1.preview.localhost:8000/?token=t",
		"t2 [in_progress] Build the app — Alex (after t1): Vite + React", "t1 [done] Write the PRD — Emma",
		"Last run: stopped — the step limit", "What Mike last told the user: The app runs; the header is next.",
	} {
		require.Contains(t, got, want)
	}
	require.NotContains(t, got, "pkg17", "dependency folders are never listed")
	require.Less(t, strings.Index(got, "t2 [in_progress]"), strings.Index(got, "t1 [done]"), "open tasks first")
	require.Less(t, strings.Index(got, "dev — running"), strings.Index(got, "install — exited"), "running processes first")
	require.Less(t, len(got), 12000, "bounded")
	for _, o := range w.owners {
		require.Equal(t, "alice", o, "sandboxd is asked as the session's owner")
	}
}

func TestBriefWhenTheSandboxIsDown(t *testing.T) {
	b := serve(t, &workspace{down: true})
	b.Timeout = 2 * time.Second
	got := b.Brief(t.Context(), workflow.BriefInput{SessionID: sid, OwnerID: "alice"})
	require.Contains(t, got, "the file tree could not be read: the sandbox service is unavailable")
	require.NotContains(t, got, "10.0.0.7", "no addresses reach a model")
	require.Contains(t, got, "Plan: none yet.")
}
