package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// A stopping agentd drains: for AGENTD_DRAIN_DELAY its gRPC health says NOT_SERVING while it still
// serves new calls, and a call already running when the stop began (creating a session, whose
// sandbox is slow to launch) finishes.
func TestDrain(t *testing.T) {
	t.Parallel()
	stub, sbAddr := startSandboxStub(t)
	stub.launchGate = make(chan struct{})
	env := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
	env["AGENTD_DRAIN_DELAY"], env["AGENTD_SHUTDOWN_TIMEOUT"] = "2s", "20s"
	a := startAgentd(t, env)
	cc, err := grpcclient.Dial(a.addr, grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	c := clientsOf(cc)
	health := healthpb.NewHealthClient(cc)
	requireHealth(t, health, agentdv1.SessionService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	type result struct {
		res *agentdv1.CreateSessionResponse
		err error
	}
	inFlight := make(chan result, 1)
	go func() {
		res, err := c.sessions.CreateSession(as(t, "alice"), &agentdv1.CreateSessionRequest{Title: "in flight"})
		inFlight <- result{res, err}
	}()
	select {
	case <-stub.launching:
	case <-time.After(30 * time.Second):
		t.Fatal("the session's sandbox launch did not start")
	}

	stopped := make(chan error, 1)
	go func() { stopped <- a.svc.Stop() }()
	stacktest.Eventually(t, 2*time.Second, func() bool {
		r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	}, "health reports NOT_SERVING while draining")
	requireHealth(t, health, agentdv1.SessionService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	_, err = c.agents.ListAgents(as(t, "alice"), &agentdv1.ListAgentsRequest{})
	require.NoError(t, err, "new calls are served during the drain window")

	close(stub.launchGate)
	got := <-inFlight
	require.NoError(t, got.err, "the call in flight finished")
	require.Equal(t, "in flight", got.res.GetSession().GetTitle())
	require.NoError(t, <-stopped)
}

func requireHealth(t *testing.T, h healthpb.HealthClient, svc string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	r, err := h.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
	require.NoError(t, err)
	require.Equal(t, want, r.GetStatus(), svc)
}

func clientsOf(cc *grpc.ClientConn) clients {
	return clients{agentdv1.NewSessionServiceClient(cc), agentdv1.NewChatServiceClient(cc),
		agentdv1.NewEventServiceClient(cc), agentdv1.NewAgentServiceClient(cc)}
}
