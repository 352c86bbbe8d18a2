package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// A stopping sandboxd drains: for SANDBOXD_DRAIN_DELAY its gRPC health says NOT_SERVING while it
// still serves new calls, and an exec already running when the stop began finishes with its output.
func TestDrain(t *testing.T) {
	t.Parallel()
	e := start(t, "local", map[string]string{
		"SANDBOXD_DRAIN_DELAY": "2s", "SANDBOXD_SHUTDOWN_TIMEOUT": "20s", "SANDBOXD_DESTROY_ON_EXIT": "true",
	})
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	health := healthpb.NewHealthClient(e.conn)
	r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: sandboxdv1.SandboxService_ServiceDesc.ServiceName})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, r.GetStatus())

	type result struct {
		res *sandboxdv1.ExecResponse
		err error
	}
	inFlight := make(chan result, 1)
	go func() {
		res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "touch started; sleep 3; echo finished"})
		inFlight <- result{res, err}
	}()
	eventually(t, 10*time.Second, func() bool {
		_, err := e.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "started"})
		return err == nil
	}, "the exec is running")

	stopped := make(chan error, 1)
	go func() { stopped <- e.svc.Stop() }()
	eventually(t, 2*time.Second, func() bool {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	}, "health reports NOT_SERVING while draining")
	r, err = health.Check(ctx, &healthpb.HealthCheckRequest{Service: sandboxdv1.SandboxService_ServiceDesc.ServiceName})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, r.GetStatus(), "every service reports NOT_SERVING")
	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo still-serving"})
	require.NoError(t, err, "new calls are served during the drain window")
	require.Equal(t, "still-serving\n", res.GetStdout())

	got := <-inFlight
	require.NoError(t, got.err, "the exec in flight finished")
	require.Equal(t, "finished\n", got.res.GetStdout())
	require.NoError(t, <-stopped)
}
