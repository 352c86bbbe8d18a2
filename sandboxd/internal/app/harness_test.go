package app_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/authn"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/redistest"
	"github.com/mgx-ai/mgx/pkg/telemetry"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/app"
	"github.com/mgx-ai/mgx/sandboxd/internal/config"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandboxtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sandboxtest.Cleanup()
	os.Exit(code)
}

const token = "test-internal-token"

// env is one running sandboxd (built by the production constructor, served
// on real loopback listeners) and clients for it.
type env struct {
	t        *testing.T
	app      *app.App
	cfg      config.Config
	redisURL string
	sb       sandboxdv1.SandboxServiceClient
	files    sandboxdv1.FileServiceClient
	procs    sandboxdv1.ProcessServiceClient
	stop     func()
}

func baseEnv(t *testing.T, driverName, redisURL string) map[string]string {
	m := map[string]string{
		"MGX_INTERNAL_TOKEN":      token,
		"MGX_LOG_LEVEL":           "warn",
		"SANDBOXD_LISTEN":         "127.0.0.1:0",
		"SANDBOXD_PREVIEW_LISTEN": "127.0.0.1:0",
		"SANDBOXD_REDIS_URL":      redisURL,
		"SANDBOXD_DRIVER":         driverName,
		"SANDBOXD_RUN_DIR":        sandboxtest.RunDir(t),
		"SANDBOX_AGENT_BINARY":    sandboxtest.AgentBinary(t),
		"SANDBOX_IMAGE":           sandboxtest.Image,
		"SANDBOX_POOL_SIZE":       "0",
		"SANDBOX_MEMORY":          "256m",
		"SANDBOX_PIDS_LIMIT":      "128",
		"SANDBOX_CREATE_TIMEOUT":  "20",
		"MGX_PUBLIC_URL":          "http://localhost:8000",
		// Never touch the containers of another sandboxd on this engine
		// (a `make run` stack, another test).
		"SANDBOXD_NAMESPACE": "test-" + uuid.NewString()[:8],
	}
	return m
}

// start runs sandboxd with the given driver; extra overrides variables.
func start(t *testing.T, driverName string, extra map[string]string) *env {
	t.Helper()
	if driverName == "docker" {
		sandboxtest.Docker(t)
	}
	redisURL := redistest.Start(t)
	vars := baseEnv(t, driverName, redisURL)
	for k, v := range extra {
		vars[k] = v
	}
	return startWith(t, vars)
}

func startWith(t *testing.T, vars map[string]string) *env {
	t.Helper()
	cfg, err := pkgconfig.LoadFrom[config.Config](vars)
	require.NoError(t, err)
	log := telemetry.NewLogger(cfg.LogLevel, cfg.LogFormat, "sandboxd-test")
	a, err := app.New(t.Context(), cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	conn, err := grpcclient.Dial(a.GRPCAddr(), grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	e := &env{
		t: t, app: a, cfg: cfg, redisURL: vars["SANDBOXD_REDIS_URL"],
		sb: sandboxdv1.NewSandboxServiceClient(conn), files: sandboxdv1.NewFileServiceClient(conn),
		procs: sandboxdv1.NewProcessServiceClient(conn),
	}
	var once bool
	e.stop = func() {
		if once {
			return
		}
		once = true
		_ = conn.Close()
		cancel()
		<-done
	}
	t.Cleanup(func() {
		// Leave nothing behind: destroy every sandbox this sandboxd made.
		ctx, c := context.WithTimeout(context.Background(), 60*time.Second)
		defer c()
		insts, _ := a.DriverIn.List(ctx)
		for _, in := range insts {
			_ = a.DriverIn.Remove(ctx, in.ID)
		}
		e.stop()
	})
	return e
}

func as(ctx context.Context, user string) context.Context { return authn.WithUser(ctx, user) }

func newSession() string { return uuid.NewString() }

func code(err error) codes.Code { return status.Code(err) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sandboxdBinary(t *testing.T) string { return sandboxtest.SandboxdBinary(t) }

func startRedis(t *testing.T) string { return redistest.Start(t) }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
