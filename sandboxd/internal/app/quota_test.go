package app_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// requireQuota checks a refusal by a per-user quota: ResourceExhausted (429 through the gateway),
// reason QUOTA_EXCEEDED, a Retry-After, and which quota it is.
func requireQuota(t *testing.T, err error, quota string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, codes.ResourceExhausted, code(err), "%v", err)
	require.Equal(t, errorsv1.ErrorReason_QUOTA_EXCEEDED, rpcerr.Reason(err), "%v", err)
	info, ok := rpcerr.ErrorInfo(err)
	require.True(t, ok)
	require.Equal(t, quota, info.GetMetadata()["quota"])
	require.NotEmpty(t, info.GetMetadata()[rpcerr.MetaRetryAfter])
}

// TestExecQuota: a user runs at most SANDBOXD_MAX_EXECS_PER_USER commands at once, over all their
// sandboxes and every sandboxd replica; other users are not affected, and a finished command frees
// its slot.
func TestExecQuota(t *testing.T) {
	t.Parallel()
	e := start(t, "local", map[string]string{"SANDBOXD_MAX_EXECS_PER_USER": "2"})
	// A second replica sharing the first one's Redis and run directory.
	vars := maps.Clone(e.vars)
	replica := startWith(t, vars)
	alice, bob := as(t.Context(), "alice"), as(t.Context(), "bob")
	s1, s2, s3 := newSession(), newSession(), newSession()
	for _, sid := range []string{s1, s2} {
		_, err := e.sb.LaunchSandbox(alice, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		require.NoError(t, err)
	}
	_, err := e.sb.LaunchSandbox(bob, &sandboxdv1.LaunchSandboxRequest{SessionId: s3})
	require.NoError(t, err)

	// Two long commands of alice, in two sandboxes. Each says it runs (the file "started") and ends
	// when the test writes the file "go" into its workspace (or after 60 s).
	var wg sync.WaitGroup
	longErrs := make([]error, 2)
	for i, sid := range []string{s1, s2} {
		wg.Go(func() {
			_, longErrs[i] = e.sb.Exec(alice, &sandboxdv1.ExecRequest{SessionId: sid, Command: "touch started; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done", Timeout: 90})
		})
	}
	for _, sid := range []string{s1, s2} {
		eventually(t, 30*time.Second, func() bool {
			_, err := e.files.ReadFile(alice, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: "started"})
			return err == nil
		}, "the long command runs in "+sid)
	}
	_, err = e.sb.Exec(alice, &sandboxdv1.ExecRequest{SessionId: s1, Command: "true"})
	requireQuota(t, err, "commands")

	// On the other replica too, and for the streamed form.
	_, err = replica.sb.Exec(alice, &sandboxdv1.ExecRequest{SessionId: s2, Command: "true"})
	requireQuota(t, err, "commands")
	st, err := e.sb.ExecStream(alice, &sandboxdv1.ExecStreamRequest{SessionId: s1, Command: "echo hi"})
	require.NoError(t, err)
	_, err = st.Recv()
	requireQuota(t, err, "commands")
	// Bob has his own.
	res, err := replica.sb.Exec(bob, &sandboxdv1.ExecRequest{SessionId: s3, Command: "echo bob"})
	require.NoError(t, err)
	require.Equal(t, "bob\n", res.GetStdout())

	// The long commands end: alice's slots are free again.
	for _, sid := range []string{s1, s2} {
		_, err := e.files.WriteFile(alice, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "go", Content: "1"})
		require.NoError(t, err)
	}
	wg.Wait()
	require.NoError(t, longErrs[0])
	require.NoError(t, longErrs[1])
	res, err = replica.sb.Exec(alice, &sandboxdv1.ExecRequest{SessionId: s1, Command: "echo again"})
	require.NoError(t, err)
	require.Equal(t, "again\n", res.GetStdout())
}

// TestProcessQuota: a user runs at most SANDBOXD_MAX_PROCESSES_PER_USER background processes over
// all their sandboxes; concurrent starts cannot overshoot, and a stopped process frees its place.
func TestProcessQuota(t *testing.T) {
	t.Parallel()
	e := start(t, "local", map[string]string{"SANDBOXD_MAX_PROCESSES_PER_USER": "2"})
	alice, bob := as(t.Context(), "alice"), as(t.Context(), "bob")
	s1, s2, s3 := newSession(), newSession(), newSession()
	for sid, ctx := range map[string]context.Context{s1: alice, s2: alice, s3: bob} {
		_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		require.NoError(t, err)
	}
	startProc := func(ctx context.Context, sid, name string) error {
		_, err := e.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: sid, Name: name, Command: "sleep 120"})
		return err
	}
	require.NoError(t, startProc(alice, s1, "one"))
	require.NoError(t, startProc(alice, s2, "two"))
	requireQuota(t, startProc(alice, s1, "three"), "background processes")
	require.NoError(t, startProc(bob, s3, "bobs"), "another user has a quota of his own")

	// Stopping one frees its place.
	_, err := e.procs.SignalProcess(alice, &sandboxdv1.SignalProcessRequest{SessionId: s1, Name: "one", Signal: "KILL"})
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool {
		ps, err := e.procs.ListProcesses(alice, &sandboxdv1.ListProcessesRequest{SessionId: s1})
		return err == nil && len(ps.GetProcesses()) == 1 && ps.GetProcesses()[0].GetState() == "exited"
	}, "the killed process exited")

	// One place, five concurrent starts: exactly one gets it.
	errs := make([]error, 5)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = startProc(alice, s1, fmt.Sprintf("race-%d", i)) })
	}
	wg.Wait()
	started := 0
	for _, err := range errs {
		if err == nil {
			started++
			continue
		}
		requireQuota(t, err, "background processes")
	}
	require.Equal(t, 1, started)
}
