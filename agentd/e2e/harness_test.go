package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/redistest"
)

const token = "e2e-internal-token"

// TestMain removes the binaries built for the tests. The tests use dedicated Redis servers
// (redistest.Start), which stop with each test.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

func repoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// build compiles a main package of a sibling module as a process binary, once per test binary.
func build(t *testing.T, module, pkg string, static bool) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := module + "/" + pkg
	if p, ok := built[key]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "agentd-e2e-bin-")
		require.NoError(t, err)
		binDir = d
	}
	out := filepath.Join(binDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Join(repoDir(), module)
	cmd.Env = os.Environ()
	if static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s in %s: %v\n%s", pkg, module, err, b)
	}
	built[key] = out
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func freePort(t *testing.T) int {
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// proc is a service started as a child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startProc(t *testing.T, name, bin string, env map[string]string) *proc {
	t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	w := lockedWriter{p.mu, p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv("AGENTD_TEST_LOG") != "" {
			t.Logf("---- %s log ----\n%s", p.name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop ends the process gracefully (SIGTERM, then SIGKILL after a grace period).
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process with SIGKILL: no shutdown code runs.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitServing waits until a gRPC server answers on addr (any status but Unavailable).
func waitServing(t *testing.T, p *proc, addr string) {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	defer cc.Close()
	c := agentdv1.NewAgentServiceClient(cc)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListAgents(authn.WithUser(ctx, "probe"), &agentdv1.ListAgentsRequest{})
		cancel()
		if status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited while starting:\n%s", p.name, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start serving on %s:\n%s", p.name, addr, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sandboxd is a real sandboxd process.
type sandboxd struct {
	addr        string
	previewAddr string
	proc        *proc
}

// dockerAnswers pings the engine's API on its unix socket.
func dockerAnswers() bool {
	sock := "/var/run/docker.sock"
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		sock = h
	}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Get("http://docker/_ping")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func ci() bool { return redistest.CI() }

func startSandboxd(t *testing.T, driver, redisURL string) *sandboxd {
	t.Helper()
	if driver == "docker" && !dockerAnswers() {
		if ci() {
			t.Fatal("no Docker engine answers and CI=true")
		}
		t.Skip("no Docker engine answers")
	}
	bin := build(t, "sandboxd", "./cmd/sandboxd", false)
	agent := build(t, "sandboxd", "./cmd/sandbox-agent", true)
	runDir, err := os.MkdirTemp("", "ae2e-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(runDir) })
	s := &sandboxd{addr: freeAddr(t), previewAddr: freeAddr(t)}
	s.proc = startProc(t, "sandboxd", bin, map[string]string{
		"MGX_INTERNAL_TOKEN": token, "MGX_LOG_LEVEL": "info", "SANDBOXD_LISTEN": s.addr, "SANDBOXD_PREVIEW_LISTEN": s.previewAddr,
		"SANDBOXD_REDIS_URL": redisURL, "SANDBOXD_DRIVER": driver, "SANDBOXD_RUN_DIR": runDir, "SANDBOX_AGENT_BINARY": agent,
		"SANDBOX_POOL_SIZE": "0", "SANDBOX_MEMORY": "256m", "SANDBOX_CREATE_TIMEOUT": "60", "MGX_PUBLIC_URL": "http://localhost:8000",
		"DOCKER_HOST": os.Getenv("DOCKER_HOST"),
	})
	cc, err := grpcclient.Dial(s.addr, grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	defer cc.Close()
	c := sandboxdv1.NewSandboxServiceClient(cc)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.ListSandboxes(authn.WithUser(ctx, "probe"), &sandboxdv1.ListSandboxesRequest{})
		cancel()
		if err == nil {
			break
		}
		select {
		case <-s.proc.done:
			t.Fatalf("sandboxd exited while starting:\n%s", s.proc.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandboxd did not become ready: %v\n%s", err, s.proc.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s
}

// startAgentd runs an agentd binary against redisURL and sandboxd.
func startAgentd(t *testing.T, name, redisURL, sandboxdAddr string, extra map[string]string) (*proc, string) {
	t.Helper()
	bin := build(t, "agentd", "./cmd/agentd", false)
	addr := freeAddr(t)
	env := map[string]string{
		"MGX_INTERNAL_TOKEN": token, "MGX_LOG_LEVEL": "info", "AGENTD_LISTEN": addr, "AGENTD_REDIS_URL": redisURL,
		"SANDBOXD_ADDR": sandboxdAddr, "AGENTD_LLM_PROVIDER": "scripted", "AGENTD_REPLICA_ID": name,
		"AGENTD_RUN_LEASE_TTL": "3s", "AGENTD_SHUTDOWN_TIMEOUT": "3s",
	}
	for k, v := range extra {
		env[k] = v
	}
	p := startProc(t, name, bin, env)
	waitServing(t, p, addr)
	return p, addr
}

type clients struct {
	sessions agentdv1.SessionServiceClient
	chat     agentdv1.ChatServiceClient
	events   agentdv1.EventServiceClient
	files    sandboxdv1.FileServiceClient
	sandbox  sandboxdv1.SandboxServiceClient
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
		sandboxdv1.NewFileServiceClient(s), sandboxdv1.NewSandboxServiceClient(s)}
}

// collect streams events after after until done, or fails at the deadline.
func collect(t *testing.T, c clients, ctx context.Context, sid string, after uint32, timeout time.Duration, done func([]*agentdv1.Event) bool) []*agentdv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := c.events.StreamEvents(ctx, &agentdv1.StreamEventsRequest{SessionId: sid, AfterSeq: after})
	require.NoError(t, err)
	var out []*agentdv1.Event
	for {
		r, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.DeadlineExceeded {
				t.Fatalf("event stream ended before the expected events: %v; got %s", err, describe(out))
			}
			require.NoError(t, err)
		}
		out = append(out, r.GetEvent())
		if done(out) {
			return out
		}
	}
}

func describe(evs []*agentdv1.Event) string {
	var b strings.Builder
	for _, e := range evs {
		c := e.GetContent()
		if len(c) > 160 {
			c = c[:160] + "…"
		}
		fmt.Fprintf(&b, "\n  %d %s %s %s: %s", e.GetSequence(), e.GetType(), e.GetAgent(), e.GetTool(), c)
	}
	return b.String()
}

func runStatus(e *agentdv1.Event) string { return e.GetData().GetFields()["status"].GetStringValue() }

func ended(statuses ...string) func([]*agentdv1.Event) bool {
	return func(evs []*agentdv1.Event) bool {
		last := evs[len(evs)-1]
		for _, s := range statuses {
			if runStatus(last) == s && (last.GetType() == "run" || last.GetType() == "status" || last.GetType() == "error") {
				return true
			}
		}
		return false
	}
}

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
