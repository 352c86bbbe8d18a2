package app_test

import (
	"context"
	"encoding/base64"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/app"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandboxtest"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, stacktest.Binaries("sandbox-agent", "wsecho", "sandboxd"))
}

const token = "test-internal-token"

// env is one sandboxd running in the test's process (through the skeleton its main runs, on real
// loopback listeners) and clients for it.
type env struct {
	t        *testing.T
	app      *app.App
	vars     map[string]string
	redisURL string
	sb       sandboxdv1.SandboxServiceClient
	files    sandboxdv1.FileServiceClient
	procs    sandboxdv1.ProcessServiceClient
	ws       sandboxdv1.WorkspaceServiceClient
	conn     *grpc.ClientConn
	svc      *stacktest.Service[*app.App]
	// stop stops sandboxd (drain and all); later calls do nothing.
	stop func()
}

func baseEnv(t *testing.T, driverName, redisURL string) map[string]string {
	return map[string]string{
		"MGX_INTERNAL_TOKEN":        token,
		"MGX_LOG_LEVEL":             "info",
		"SANDBOXD_LISTEN":           "127.0.0.1:0",
		"SANDBOXD_PREVIEW_LISTEN":   "127.0.0.1:0",
		"SANDBOXD_REDIS_URL":        redisURL,
		"SANDBOXD_DRIVER":           driverName,
		"SANDBOXD_RUN_DIR":          stacktest.RunDir(t),
		"SANDBOX_AGENT_BINARY":      stacktest.Bin(t, "sandbox-agent"),
		"SANDBOX_IMAGE":             sandboxtest.Image,
		"SANDBOX_POOL_SIZE":         "0",
		"SANDBOX_MEMORY":            "256m",
		"SANDBOX_PIDS_LIMIT":        "128",
		"SANDBOX_CREATE_TIMEOUT":    "20",
		"MGX_PUBLIC_URL":            "http://localhost:8000",
		"SANDBOXD_DRAIN_DELAY":      "0s",
		"SANDBOXD_SHUTDOWN_TIMEOUT": "5s",
		// Never touch the containers of another sandboxd on this engine (a `make run` stack,
		// another test).
		"SANDBOXD_NAMESPACE": "test-" + uuid.NewString()[:8],
	}
}

// start runs sandboxd with the given driver; extra overrides variables.
func start(t *testing.T, driverName string, extra map[string]string) *env {
	t.Helper()
	if driverName == "docker" {
		sandboxtest.Docker(t)
	}
	vars := baseEnv(t, driverName, stacktest.Redis(t))
	for k, v := range extra {
		vars[k] = v
	}
	return startWith(t, vars)
}

func startWith(t *testing.T, vars map[string]string) *env {
	t.Helper()
	svc := stacktest.InProcess(t, "sandboxd", app.New, vars)
	a := svc.App
	conn, err := grpcclient.Dial(a.GRPCAddr(), grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	e := &env{
		t: t, app: a, vars: vars, redisURL: vars["SANDBOXD_REDIS_URL"],
		sb: sandboxdv1.NewSandboxServiceClient(conn), files: sandboxdv1.NewFileServiceClient(conn),
		procs: sandboxdv1.NewProcessServiceClient(conn), ws: sandboxdv1.NewWorkspaceServiceClient(conn),
		conn: conn, svc: svc,
	}
	var stopped bool
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = conn.Close()
		if err := svc.Stop(); err != nil {
			t.Logf("sandboxd stopped with: %v", err)
		}
	}
	// Registered after InProcess's own cleanup, so it runs first: leave nothing behind, destroy
	// every sandbox and volume this sandboxd made (also when the test stopped sandboxd and left them
	// running: the local driver still lists and removes them then).
	t.Cleanup(func() {
		ctx, c := context.WithTimeout(context.Background(), 60*time.Second)
		defer c()
		insts, _ := a.Driver.List(ctx)
		for _, in := range insts {
			_ = a.Driver.Remove(ctx, in.ID)
		}
		// The workspaces outlive their sandboxes by design; the test's (this namespace's) go too.
		vols, _ := a.Driver.ListVolumes(ctx)
		for _, v := range vols {
			_ = a.Driver.RemoveVolume(ctx, v.Name)
		}
		e.stop()
	})
	return e
}

func as(ctx context.Context, user string) context.Context { return authn.WithUser(ctx, user) }

// installWsecho puts the wsecho test server (a page, assets and a WebSocket echo) into the session's
// workspace as ./wsecho, executable, through the files API as a user would.
func installWsecho(ctx context.Context, t *testing.T, e *env, sid string) {
	t.Helper()
	echo, err := os.ReadFile(stacktest.Bin(t, "wsecho"))
	require.NoError(t, err)
	_, err = e.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "wsecho", Content: base64.StdEncoding.EncodeToString(echo), Encoding: "base64"})
	require.NoError(t, err)
	_, err = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "chmod +x wsecho"})
	require.NoError(t, err)
}

func newSession() string { return uuid.NewString() }

func code(err error) codes.Code { return status.Code(err) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, msg string) {
	t.Helper()
	stacktest.Eventually(t, within, cond, "%s", msg)
}
