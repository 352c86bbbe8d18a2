package e2e_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/eventtest"
	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, stacktest.Binaries("sandboxd", "sandbox-agent", "agentd", "gateway"))
}

const token = stacktest.Token

// startStack runs sandboxd with driver and one agentd replica (extra environment on top) against a
// fresh Redis, as processes, with no gateway: these tests speak gRPC.
func startStack(t *testing.T, driver string, agentdEnv map[string]string) *stacktest.Stack {
	t.Helper()
	return stacktest.StartStack(t, stacktest.Spec{Driver: driver, NoGateway: true, AgentdEnv: agentdEnv})
}

type clients struct {
	sessions agentdv1.SessionServiceClient
	chat     agentdv1.ChatServiceClient
	events   agentdv1.EventServiceClient
	files    sandboxdv1.FileServiceClient
	sandbox  sandboxdv1.SandboxServiceClient
	ws       sandboxdv1.WorkspaceServiceClient
}

func dial(t *testing.T, agentdAddr, sandboxdAddr string) clients {
	t.Helper()
	a, err := grpcclient.Dial(agentdAddr, grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	s, err := grpcclient.Dial(sandboxdAddr, grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return clients{agentdv1.NewSessionServiceClient(a), agentdv1.NewChatServiceClient(a), agentdv1.NewEventServiceClient(a),
		sandboxdv1.NewFileServiceClient(s), sandboxdv1.NewSandboxServiceClient(s), sandboxdv1.NewWorkspaceServiceClient(s)}
}

// collect streams events after after until done, or fails at the deadline.
func collect(t *testing.T, c clients, ctx context.Context, sid string, after uint32, timeout time.Duration, done func([]*agentdv1.Event) bool) []*agentdv1.Event {
	t.Helper()
	return eventtest.Collect(t, c.events, ctx, sid, after, timeout, done)
}

var (
	describe  = eventtest.Describe
	runStatus = eventtest.RunStatus
	ended     = eventtest.RunEnded
)

// fetchPreview GETs a preview URL the way the gateway forwards it: to sandboxd's preview listener,
// Host header unchanged, following the token→cookie redirect.
func fetchPreview(t *testing.T, previewAddr, rawURL string) (int, string) {
	t.Helper()
	jar := newJar()
	hc := &http.Client{
		Jar: jar,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, previewAddr)
		}},
		Timeout: 10 * time.Second,
	}
	resp, err := hc.Get(rawURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// destroyOnCleanup destroys the session's sandbox when the test ends (before sandboxd stops): local
// sandboxes are host processes that would outlive the test otherwise.
func destroyOnCleanup(t *testing.T, c clients, owner, sid string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = c.sandbox.DestroySandbox(authn.WithUser(ctx, owner), &sandboxdv1.DestroySandboxRequest{SessionId: sid, Forget: true})
	})
}
