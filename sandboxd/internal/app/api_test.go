package app_test

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/mgx-ai/mgx/pkg/grpcclient"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/server"
)

func TestUnauthenticatedCallsRefused(t *testing.T) {
	t.Parallel()
	e := start(t, "local", nil)
	conn, err := grpcclient.Dial(e.app.GRPCAddr(), grpcclient.Options{InternalToken: "wrong"})
	require.NoError(t, err)
	defer conn.Close()
	_, err = sandboxdv1.NewSandboxServiceClient(conn).ListSandboxes(as(t.Context(), "u"), &sandboxdv1.ListSandboxesRequest{})
	require.Equal(t, codes.Unauthenticated, code(err))
	// Validation: a session id must be a UUID.
	_, err = e.sb.Exec(as(t.Context(), "u"), &sandboxdv1.ExecRequest{SessionId: "../etc", Command: "true"})
	require.Equal(t, codes.InvalidArgument, code(err))
	// No user on the call.
	_, err = e.sb.LaunchSandbox(t.Context(), &sandboxdv1.LaunchSandboxRequest{SessionId: newSession()})
	require.Equal(t, codes.Unauthenticated, code(err))
}

func TestOperatorVariants(t *testing.T) {
	t.Parallel()
	e := start(t, "local", nil)
	alice, bob := as(t.Context(), "alice"), as(t.Context(), "bob")
	sa, sbid := newSession(), newSession()
	_, err := e.sb.LaunchSandbox(alice, &sandboxdv1.LaunchSandboxRequest{SessionId: sa})
	require.NoError(t, err)
	_, err = e.sb.LaunchSandbox(bob, &sandboxdv1.LaunchSandboxRequest{SessionId: sbid})
	require.NoError(t, err)

	op := metadata.AppendToOutgoingContext(as(t.Context(), "root-op"), server.MDUserRole, "operator")
	list, err := e.sb.ListSandboxes(op, &sandboxdv1.ListSandboxesRequest{AllUsers: true})
	require.NoError(t, err)
	require.Len(t, list.GetSandboxes(), 2)
	// Without all_users an operator sees only their own (none).
	list, err = e.sb.ListSandboxes(op, &sandboxdv1.ListSandboxesRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetSandboxes())
	_, err = e.sb.DestroyAllSandboxes(alice, &sandboxdv1.DestroyAllSandboxesRequest{AllUsers: true})
	require.Equal(t, codes.PermissionDenied, code(err))
	all, err := e.sb.DestroyAllSandboxes(op, &sandboxdv1.DestroyAllSandboxesRequest{AllUsers: true})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{sa, sbid}, all.GetStoppedSessions())
}

// TestDestroyOnExit: by default a stopping sandboxd leaves its sandboxes running for the next one to
// re-adopt; with SANDBOXD_DESTROY_ON_EXIT (what `make run` sets) a graceful stop destroys them, so
// no sandbox process outlives the stack.
func TestDestroyOnExit(t *testing.T) {
	t.Parallel()
	for _, destroy := range []bool{false, true} {
		t.Run(fmt.Sprintf("destroy=%v", destroy), func(t *testing.T) {
			e := start(t, "local", map[string]string{"SANDBOXD_DESTROY_ON_EXIT": strconv.FormatBool(destroy)})
			ctx := as(t.Context(), "alice")
			for range 2 {
				_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: newSession()})
				require.NoError(t, err)
			}
			insts, err := e.app.Driver.List(t.Context())
			require.NoError(t, err)
			require.Len(t, insts, 2)
			if !destroy {
				// The harness's cleanup removes what this sandboxd leaves behind.
				e.stop()
				for _, in := range insts {
					require.NoError(t, syscall.Kill(in.PID, 0), "sandbox %s kept running", in.Name)
				}
				return
			}
			e.stop()
			for _, in := range insts {
				eventually(t, 10*time.Second, func() bool { return syscall.Kill(in.PID, 0) == syscall.ESRCH },
					"sandbox agent "+in.Name+" still running after a graceful stop")
			}
		})
	}
}
