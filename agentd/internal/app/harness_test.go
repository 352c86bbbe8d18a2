package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/app"
	"github.com/mgx-ai/mgx/agentd/internal/eventtest"
	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

const token = "test-internal-token"

// sandboxStub stands in for sandboxd in the tests of agentd's own behaviour: it speaks sandboxd's real
// gRPC API behind the real server factory and records what agentd asked, as whom. The end-to-end
// test runs the real sandboxd instead.
type sandboxStub struct {
	sandboxdv1.UnimplementedSandboxServiceServer
	sandboxdv1.UnimplementedFileServiceServer
	sandboxdv1.UnimplementedProcessServiceServer

	mu        sync.Mutex
	launched  map[string]string // session → owner
	destroyed []string
	execs     []string
	files     map[string]string
	execStop  chan string // receives the command of an exec whose caller went away
	// launchGate, when set before the calls start, holds every LaunchSandbox until it is closed;
	// launching receives each held call's session id.
	launchGate chan struct{}
	launching  chan string
}

func newSandboxStub() *sandboxStub {
	return &sandboxStub{launched: map[string]string{}, files: map[string]string{}, execStop: make(chan string, 16),
		launching: make(chan string, 16)}
}

func (s *sandboxStub) LaunchSandbox(ctx context.Context, r *sandboxdv1.LaunchSandboxRequest) (*sandboxdv1.LaunchSandboxResponse, error) {
	uid, _ := authn.UserID(ctx)
	if s.launchGate != nil {
		s.launching <- r.GetSessionId()
		select {
		case <-s.launchGate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.launched[r.GetSessionId()] = uid
	return &sandboxdv1.LaunchSandboxResponse{Sandbox: &sandboxdv1.Sandbox{SessionId: r.GetSessionId(), OwnerId: uid,
		ContainerId: "c-" + r.GetSessionId()[:8], ContainerName: "mgx-" + r.GetSessionId()[:8], WorkspacePath: "/workspace"},
		Logs: []string{"launched"}}, nil
}

func (s *sandboxStub) DestroySandbox(_ context.Context, r *sandboxdv1.DestroySandboxRequest) (*sandboxdv1.DestroySandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.GetForget() {
		s.destroyed = append(s.destroyed, r.GetSessionId())
	}
	return &sandboxdv1.DestroySandboxResponse{SessionId: r.GetSessionId(), Stopped: true}, nil
}

func (s *sandboxStub) Exec(ctx context.Context, r *sandboxdv1.ExecRequest) (*sandboxdv1.ExecResponse, error) {
	s.mu.Lock()
	s.execs = append(s.execs, r.GetCommand())
	s.mu.Unlock()
	if strings.HasPrefix(r.GetCommand(), "block") {
		<-ctx.Done()
		s.execStop <- r.GetCommand()
		return nil, ctx.Err()
	}
	return &sandboxdv1.ExecResponse{Command: r.GetCommand(), ExitCode: 0, Stdout: "ran: " + r.GetCommand()}, nil
}

func (s *sandboxStub) WriteFile(_ context.Context, r *sandboxdv1.WriteFileRequest) (*sandboxdv1.WriteFileResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[r.GetPath()] = r.GetContent()
	return &sandboxdv1.WriteFileResponse{Path: r.GetPath(), Size: float64(len(r.GetContent()))}, nil
}

func (s *sandboxStub) execCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.execs)
}

func startSandboxStub(t *testing.T) (*sandboxStub, string) {
	t.Helper()
	stub := newSandboxStub()
	srv, _, err := grpcserver.New(grpcserver.Options{InternalToken: token, Logger: quietLog()})
	require.NoError(t, err)
	sandboxdv1.RegisterSandboxServiceServer(srv, stub)
	sandboxdv1.RegisterFileServiceServer(srv, stub)
	sandboxdv1.RegisterProcessServiceServer(srv, stub)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return stub, lis.Addr().String()
}

func quietLog() *slog.Logger {
	if os.Getenv("AGENTD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// agentd is one agentd running in the test's process, started through the skeleton its main runs,
// on a real listener.
type agentd struct {
	addr string
	svc  *stacktest.Service[*app.App]
}

// stop stops the replica as SIGTERM would: it drains, hands its runs back and closes.
func (a *agentd) stop() { _ = a.svc.Stop() }

func startAgentd(t *testing.T, env map[string]string) *agentd {
	t.Helper()
	svc := stacktest.InProcess(t, "agentd", app.New, env)
	return &agentd{addr: svc.App.Addr(), svc: svc}
}

// baseEnv is a test agentd's environment; script is a scripted-provider script, or "" for the default.
func baseEnv(t *testing.T, redisURL, sandboxdAddr, script string) map[string]string {
	env := map[string]string{
		"MGX_INTERNAL_TOKEN": token, "AGENTD_REDIS_URL": redisURL, "SANDBOXD_ADDR": sandboxdAddr,
		"AGENTD_LLM_PROVIDER": "scripted", "AGENTD_RUN_LEASE_TTL": "2s", "AGENTD_EVENT_TAIL_BLOCK": "500ms",
		"AGENTD_LISTEN": "127.0.0.1:0", "AGENTD_SHUTDOWN_TIMEOUT": "2s", "AGENTD_DRAIN_DELAY": "0s",
	}
	if script != "" {
		p := filepath.Join(t.TempDir(), "script.yaml")
		require.NoError(t, os.WriteFile(p, []byte(script), 0o600))
		env["AGENTD_SCRIPT_FILE"] = p
	}
	return env
}

type clients struct {
	sessions agentdv1.SessionServiceClient
	chat     agentdv1.ChatServiceClient
	events   agentdv1.EventServiceClient
	agents   agentdv1.AgentServiceClient
}

func dial(t *testing.T, addr string) clients {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return clients{agentdv1.NewSessionServiceClient(cc), agentdv1.NewChatServiceClient(cc),
		agentdv1.NewEventServiceClient(cc), agentdv1.NewAgentServiceClient(cc)}
}

func as(t *testing.T, user string) context.Context { return authn.WithUser(t.Context(), user) }

// collect streams the session's events after after until done says stop, or fails at the deadline.
func collect(t *testing.T, c clients, ctx context.Context, sid string, after uint32, done func([]*agentdv1.Event) bool) []*agentdv1.Event {
	t.Helper()
	return eventtest.Collect(t, c.events, ctx, sid, after, 60*time.Second, done)
}

var (
	describeEvents = eventtest.Describe
	runEnded       = eventtest.RunEnded
)
