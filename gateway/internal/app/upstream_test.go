package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mgx-ai/mgx/pkg/redistest"
)

// The cross-service tests run the real agentd and sandboxd, built from
// their sibling modules, as processes on free loopback ports, with a real
// redis-server. They are skipped only while a service has no main package
// yet (the services are built concurrently).

var (
	binMu    sync.Mutex
	binBuilt = map[string]error{}
	repoRoot = filepath.Join("..", "..", "..")
	// binDir is fixed and overwritten on every run: go build is incremental
	// through its cache, and nothing is left behind per run.
	binDir = filepath.Join(os.TempDir(), "mgx-gateway-test-bin")
)

// serviceBinary builds cmd/<name> of the sibling module <module> once per
// test binary and returns its path.
func serviceBinary(t *testing.T, module, name string) string {
	t.Helper()
	dir := filepath.Join(repoRoot, module, "cmd", name)
	if m, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(m) == 0 {
		t.Skipf("%s has no main package yet (%s)", module, dir)
	}
	binMu.Lock()
	defer binMu.Unlock()
	err, done := binBuilt[name]
	if !done {
		err = os.MkdirAll(binDir, 0o755)
		if err == nil {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "./cmd/"+name)
			cmd.Dir = filepath.Join(repoRoot, module)
			// sandbox-agent runs inside arbitrary images: static, as make build does.
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, berr := cmd.CombinedOutput(); berr != nil {
				err = fmt.Errorf("go build %s: %w\n%s", name, berr, out)
			}
		}
		binBuilt[name] = err
	}
	require.NoError(t, err)
	return filepath.Join(binDir, name)
}

func freeAddr(t *testing.T) string { return deadAddr(t) }

// process is a running service.
type process struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// startService runs bin with exactly env (plus PATH and HOME) and waits
// until its gRPC health at addr is SERVING.
func startService(t *testing.T, bin, addr string, env map[string]string) *process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// The kernel kills the service if the test binary dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, out: out}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("%s exited during start:\n%s", filepath.Base(bin), out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving after 30s (last err %v):\n%s", filepath.Base(bin), err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack is the whole product: Redis, sandboxd (local driver), agentd with
// its scripted offline LLM, and the gateway in front.
type stack struct {
	*gateway
	agentdAddr, sandboxdAddr string
}

func startStack(t *testing.T, gatewayEnv map[string]string) *stack {
	t.Helper()
	sandboxdBin := serviceBinary(t, "sandboxd", "sandboxd")
	agentBin := serviceBinary(t, "sandboxd", "sandbox-agent")
	agentdBin := serviceBinary(t, "agentd", "agentd")
	redisURL := redistest.Start(t)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	publicURL := "http://localhost:" + portOf(lis.Addr().String())

	sandboxdAddr, previewAddr, agentdAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	common := map[string]string{"MGX_INTERNAL_TOKEN": "test-internal-token", "MGX_LOG_LEVEL": "info", "MGX_PUBLIC_URL": publicURL}
	sbEnv := map[string]string{
		"SANDBOXD_LISTEN":         sandboxdAddr,
		"SANDBOXD_PREVIEW_LISTEN": previewAddr,
		"SANDBOXD_REDIS_URL":      redisURL,
		"SANDBOXD_DRIVER":         "local",
		"SANDBOXD_RUN_DIR":        t.TempDir(),
		"SANDBOX_AGENT_BINARY":    agentBin,
		// The test owns its sandboxes: its graceful stop of sandboxd destroys them all.
		"SANDBOX_POOL_SIZE":        "0",
		"SANDBOXD_DESTROY_ON_EXIT": "true",
	}
	adEnv := map[string]string{
		"AGENTD_LISTEN":       agentdAddr,
		"AGENTD_REDIS_URL":    redisURL,
		"SANDBOXD_ADDR":       sandboxdAddr,
		"AGENTD_LLM_PROVIDER": "scripted",
	}
	for k, v := range common {
		sbEnv[k], adEnv[k] = v, v
	}
	startService(t, sandboxdBin, sandboxdAddr, sbEnv)
	startService(t, agentdBin, agentdAddr, adEnv)

	env := map[string]string{
		"AGENTD_ADDR":          agentdAddr,
		"SANDBOXD_ADDR":        sandboxdAddr,
		"SANDBOXD_PREVIEW_URL": "http://" + previewAddr,
		"MGX_PUBLIC_URL":       publicURL,
	}
	for k, v := range gatewayEnv {
		env[k] = v
	}
	g := startGatewayOn(t, lis, env)
	return &stack{gateway: g, agentdAddr: agentdAddr, sandboxdAddr: sandboxdAddr}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
