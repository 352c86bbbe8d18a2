// Package server is sandboxd's gRPC edge: SandboxService, FileService and
// ProcessService. Handlers translate messages and call the domain; every
// error leaves through toStatus.
package server

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mgx-ai/mgx/pkg/authn"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
)

// MDUserRole carries the caller's role; the gateway sets "operator" for
// operators.
const MDUserRole = "x-mgx-user-role"

// Previews hands out preview URLs ("" when previews are off) and revokes them.
type Previews interface {
	URL(ctx context.Context, sessionID string, port int) (string, error)
	Rotate(ctx context.Context, sessionID string) error
}

// Server implements the four services.
type Server struct {
	sandboxdv1.UnimplementedSandboxServiceServer
	sandboxdv1.UnimplementedFileServiceServer
	sandboxdv1.UnimplementedProcessServiceServer
	sandboxdv1.UnimplementedWorkspaceServiceServer

	m   *sandbox.Manager
	pv  Previews
	q   *Quotas
	log *slog.Logger
}

// New returns the gRPC services over m, enforcing q (nil: no quotas).
func New(m *sandbox.Manager, pv Previews, q *Quotas, log *slog.Logger) *Server {
	return &Server{m: m, pv: pv, q: q, log: log}
}

// Register registers the services on s.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	sandboxdv1.RegisterSandboxServiceServer(r, s)
	sandboxdv1.RegisterFileServiceServer(r, s)
	sandboxdv1.RegisterProcessServiceServer(r, s)
	sandboxdv1.RegisterWorkspaceServiceServer(r, s)
}

func user(ctx context.Context) string {
	id, _ := authn.UserID(ctx)
	return id
}

func isOperator(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(MDUserRole) {
		if v == "operator" {
			return true
		}
	}
	return false
}

func (s *Server) err(ctx context.Context, err error) error { return toStatus(ctx, s.log, err) }

func toSandbox(r sandbox.Sandbox) *sandboxdv1.Sandbox {
	sb := &sandboxdv1.Sandbox{
		SessionId: r.SessionID, OwnerId: r.OwnerID, ContainerId: r.InstanceID, ContainerName: r.InstanceName,
		WorkspacePath: r.Workspace, Driver: r.Driver, State: r.State,
	}
	if !r.Created.IsZero() {
		sb.CreatedAt = timestamppb.New(r.Created)
	}
	if !r.LastActive.IsZero() {
		sb.LastActiveAt = timestamppb.New(r.LastActive)
	}
	return sb
}

// text makes output valid UTF-8 for a proto string field.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// LaunchSandbox implements SandboxService.
func (s *Server) LaunchSandbox(ctx context.Context, req *sandboxdv1.LaunchSandboxRequest) (*sandboxdv1.LaunchSandboxResponse, error) {
	r, logs, err := s.m.Launch(ctx, user(ctx), req.GetSessionId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	if len(logs) == 0 {
		logs = []string{"sandbox already running: " + r.InstanceName}
	}
	return &sandboxdv1.LaunchSandboxResponse{Sandbox: toSandbox(r), Logs: logs}, nil
}

// GetSandbox implements SandboxService.
func (s *Server) GetSandbox(ctx context.Context, req *sandboxdv1.GetSandboxRequest) (*sandboxdv1.GetSandboxResponse, error) {
	r, err := s.m.Get(ctx, user(ctx), req.GetSessionId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.GetSandboxResponse{Sandbox: toSandbox(r)}, nil
}

// ListSandboxes implements SandboxService.
func (s *Server) ListSandboxes(ctx context.Context, req *sandboxdv1.ListSandboxesRequest) (*sandboxdv1.ListSandboxesResponse, error) {
	if req.GetAllUsers() && !isOperator(ctx) {
		return nil, s.err(ctx, sandbox.ErrForbidden)
	}
	sbs, err := s.m.List(ctx, user(ctx), req.GetAllUsers())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.ListSandboxesResponse{Sandboxes: make([]*sandboxdv1.Sandbox, 0, len(sbs))}
	for _, r := range sbs {
		out.Sandboxes = append(out.Sandboxes, toSandbox(r))
	}
	return out, nil
}

// DestroySandbox implements SandboxService.
func (s *Server) DestroySandbox(ctx context.Context, req *sandboxdv1.DestroySandboxRequest) (*sandboxdv1.DestroySandboxResponse, error) {
	stopped, err := s.m.Destroy(ctx, user(ctx), req.GetSessionId(), req.GetForget())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.DestroySandboxResponse{SessionId: req.GetSessionId(), Stopped: stopped}, nil
}

// DestroyAllSandboxes implements SandboxService.
func (s *Server) DestroyAllSandboxes(ctx context.Context, req *sandboxdv1.DestroyAllSandboxesRequest) (*sandboxdv1.DestroyAllSandboxesResponse, error) {
	if req.GetAllUsers() && !isOperator(ctx) {
		return nil, s.err(ctx, sandbox.ErrForbidden)
	}
	ids, err := s.m.DestroyAll(ctx, user(ctx), req.GetAllUsers())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.DestroyAllSandboxesResponse{StoppedSessions: ids}, nil
}

// Exec implements SandboxService.
func (s *Server) Exec(ctx context.Context, req *sandboxdv1.ExecRequest) (*sandboxdv1.ExecResponse, error) {
	release, err := s.q.exec(ctx, user(ctx))
	if err != nil {
		return nil, s.err(ctx, err)
	}
	defer release()
	res, err := s.m.Exec(ctx, user(ctx), req.GetSessionId(), sandbox.ExecSpec{
		Command: req.GetCommand(), Cwd: req.GetCwd(), Env: req.GetEnv(), Timeout: seconds(req.GetTimeout()),
	})
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.ExecResponse{
		Command: req.GetCommand(), ExitCode: int32(res.ExitCode), Stdout: text(res.Stdout), Stderr: text(res.Stderr),
		Truncated: res.Truncated, DurationMs: res.DurationMS,
	}, nil
}

// ExecStream implements SandboxService.
func (s *Server) ExecStream(req *sandboxdv1.ExecStreamRequest, stream grpc.ServerStreamingServer[sandboxdv1.ExecStreamResponse]) error {
	ctx := stream.Context()
	release, err := s.q.exec(ctx, user(ctx))
	if err != nil {
		return s.err(ctx, err)
	}
	defer release()
	res, err := s.m.ExecStream(ctx, user(ctx), req.GetSessionId(), sandbox.ExecSpec{
		Command: req.GetCommand(), Cwd: req.GetCwd(), Env: req.GetEnv(), Timeout: seconds(req.GetTimeout()),
	}, func(stderr bool, p []byte) error {
		if stderr {
			return stream.Send(&sandboxdv1.ExecStreamResponse{Event: &sandboxdv1.ExecStreamResponse_Stderr{Stderr: p}})
		}
		return stream.Send(&sandboxdv1.ExecStreamResponse{Event: &sandboxdv1.ExecStreamResponse_Stdout{Stdout: p}})
	})
	if err != nil {
		return s.err(ctx, err)
	}
	return stream.Send(&sandboxdv1.ExecStreamResponse{Event: &sandboxdv1.ExecStreamResponse_Exit{Exit: &sandboxdv1.ExecExit{
		ExitCode: int32(res.ExitCode), Truncated: res.Truncated, DurationMs: res.DurationMS,
	}}})
}

// GetPreview implements SandboxService.
func (s *Server) GetPreview(ctx context.Context, req *sandboxdv1.GetPreviewRequest) (*sandboxdv1.GetPreviewResponse, error) {
	available, previews, err := s.previews(ctx, req.GetSessionId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.GetPreviewResponse{SessionId: req.GetSessionId(), Available: available, Previews: previews}, nil
}

// RotatePreview implements SandboxService.
func (s *Server) RotatePreview(ctx context.Context, req *sandboxdv1.RotatePreviewRequest) (*sandboxdv1.RotatePreviewResponse, error) {
	// The owner check first: RunningPorts answers NotFound for anyone else's session.
	if _, _, err := s.m.RunningPorts(ctx, user(ctx), req.GetSessionId()); err != nil {
		return nil, s.err(ctx, err)
	}
	if err := s.pv.Rotate(ctx, req.GetSessionId()); err != nil {
		return nil, s.err(ctx, err)
	}
	available, previews, err := s.previews(ctx, req.GetSessionId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.RotatePreviewResponse{SessionId: req.GetSessionId(), Available: available, Previews: previews}, nil
}

func (s *Server) previews(ctx context.Context, sessionID string) (bool, []*sandboxdv1.PortPreview, error) {
	ports, running, err := s.m.RunningPorts(ctx, user(ctx), sessionID)
	if err != nil {
		return false, nil, err
	}
	out := []*sandboxdv1.PortPreview{}
	seen := map[int]bool{}
	usable := false
	for _, p := range ports {
		if seen[p.Port] {
			continue
		}
		seen[p.Port] = true
		// Nothing is published on the host: host_port stays 0 and the URL goes through the
		// preview proxy, on a host of its own.
		url, err := s.pv.URL(ctx, sessionID, p.Port)
		if err != nil {
			return false, nil, err
		}
		usable = usable || url != ""
		out = append(out, &sandboxdv1.PortPreview{ContainerPort: int32(p.Port), Url: url})
	}
	return running && usable, out, nil
}

// GetFileTree implements FileService.
func (s *Server) GetFileTree(ctx context.Context, req *sandboxdv1.GetFileTreeRequest) (*sandboxdv1.GetFileTreeResponse, error) {
	t, err := s.m.Tree(ctx, user(ctx), req.GetSessionId(), req.GetRoot(), int(req.GetDepth()), req.GetIncludeHidden(), req.GetPrune())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.GetFileTreeResponse{Root: t.Root, Entries: toEntries(t.Entries), Truncated: t.Truncated}, nil
}

func toEntries(es []sandbox.TreeEntry) []*sandboxdv1.FileEntry {
	out := make([]*sandboxdv1.FileEntry, 0, len(es))
	for _, e := range es {
		fe := &sandboxdv1.FileEntry{Name: e.Name, Path: e.Path, Type: e.Type, Size: float64(e.Size)}
		if e.Type == "directory" {
			fe.Children = toEntries(e.Children)
		}
		out = append(out, fe)
	}
	return out
}

// ReadFile implements FileService.
func (s *Server) ReadFile(ctx context.Context, req *sandboxdv1.ReadFileRequest) (*sandboxdv1.ReadFileResponse, error) {
	f, err := s.m.ReadFile(ctx, user(ctx), req.GetSessionId(), req.GetPath())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.ReadFileResponse{
		Name: f.Name, Path: f.Path, Size: float64(f.Size),
		ModifiedAt: float64(f.ModifiedAt.UnixNano()) / 1e9, Encoding: "utf-8",
	}
	if utf8.Valid(f.Content) {
		out.Content = string(f.Content)
	} else {
		out.Content, out.Encoding = base64.StdEncoding.EncodeToString(f.Content), "base64"
	}
	return out, nil
}

// WriteFile implements FileService.
func (s *Server) WriteFile(ctx context.Context, req *sandboxdv1.WriteFileRequest) (*sandboxdv1.WriteFileResponse, error) {
	content := []byte(req.GetContent())
	if req.GetEncoding() == "base64" {
		b, err := base64.StdEncoding.DecodeString(req.GetContent())
		if err != nil {
			return nil, s.err(ctx, errors.Join(sandbox.ErrInvalidArgument, errors.New("content is not valid base64")))
		}
		content = b
	}
	r, err := s.m.WriteFile(ctx, user(ctx), req.GetSessionId(), req.GetPath(), content, req.GetAppend())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.WriteFileResponse{Path: r.Path, Size: float64(r.Size)}, nil
}

// DeleteFile implements FileService.
func (s *Server) DeleteFile(ctx context.Context, req *sandboxdv1.DeleteFileRequest) (*sandboxdv1.DeleteFileResponse, error) {
	r, err := s.m.DeleteFile(ctx, user(ctx), req.GetSessionId(), req.GetPath())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.DeleteFileResponse{Path: r.Path, Deleted: r.Deleted}, nil
}

func toProcess(p sandbox.Process) *sandboxdv1.Process {
	out := &sandboxdv1.Process{
		Name: p.Name, Command: p.Command, Cwd: p.Cwd, Pid: int32(p.PID), State: p.State,
		ExitCode: int32(p.ExitCode), StartedAt: timestamppb.New(p.StartedAt),
	}
	for _, port := range p.Ports {
		out.Ports = append(out.Ports, int32(port))
	}
	if p.ExitedAt != nil {
		out.ExitedAt = timestamppb.New(*p.ExitedAt)
	}
	return out
}

// StartProcess implements ProcessService.
func (s *Server) StartProcess(ctx context.Context, req *sandboxdv1.StartProcessRequest) (*sandboxdv1.StartProcessResponse, error) {
	admitted, err := s.q.startProcess(ctx, s.m, user(ctx))
	if err != nil {
		return nil, s.err(ctx, err)
	}
	defer admitted()
	p, err := s.m.StartProcess(ctx, user(ctx), req.GetSessionId(), sandbox.ProcessSpec{
		Name: req.GetName(), Command: req.GetCommand(), Cwd: req.GetCwd(), Env: req.GetEnv(),
	})
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.StartProcessResponse{Process: toProcess(p)}, nil
}

// ListProcesses implements ProcessService.
func (s *Server) ListProcesses(ctx context.Context, req *sandboxdv1.ListProcessesRequest) (*sandboxdv1.ListProcessesResponse, error) {
	ps, err := s.m.ListProcesses(ctx, user(ctx), req.GetSessionId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.ListProcessesResponse{Processes: make([]*sandboxdv1.Process, 0, len(ps))}
	for _, p := range ps {
		out.Processes = append(out.Processes, toProcess(p))
	}
	return out, nil
}

// GetProcessLogs implements ProcessService.
func (s *Server) GetProcessLogs(req *sandboxdv1.GetProcessLogsRequest, stream grpc.ServerStreamingServer[sandboxdv1.GetProcessLogsResponse]) error {
	ctx := stream.Context()
	rc, offset, err := s.m.ProcessLogs(ctx, user(ctx), req.GetSessionId(), req.GetName(), req.GetOffset(), req.GetTailBytes(), req.GetFollow())
	if err != nil {
		return s.err(ctx, err)
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			start := offset
			offset += int64(n)
			if err := stream.Send(&sandboxdv1.GetProcessLogsResponse{Data: append([]byte(nil), buf[:n]...), NextOffset: offset, Offset: start}); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return s.err(ctx, ctx.Err())
			}
			return s.err(ctx, rerr)
		}
	}
}

// SignalProcess implements ProcessService.
func (s *Server) SignalProcess(ctx context.Context, req *sandboxdv1.SignalProcessRequest) (*sandboxdv1.SignalProcessResponse, error) {
	p, err := s.m.SignalProcess(ctx, user(ctx), req.GetSessionId(), req.GetName(), req.GetSignal())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.SignalProcessResponse{Process: toProcess(p)}, nil
}

// ListPorts implements ProcessService.
func (s *Server) ListPorts(ctx context.Context, req *sandboxdv1.ListPortsRequest) (*sandboxdv1.ListPortsResponse, error) {
	ps, err := s.m.Ports(ctx, user(ctx), req.GetSessionId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.ListPortsResponse{Ports: make([]*sandboxdv1.ListeningPort, 0, len(ps))}
	for _, p := range ps {
		out.Ports = append(out.Ports, &sandboxdv1.ListeningPort{Port: int32(p.Port), Address: p.Address})
	}
	return out, nil
}
