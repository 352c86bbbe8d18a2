package stacktest

import (
	"maps"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Token is the internal service credential of every stack a test starts.
const Token = "stacktest-internal-token"

// JWTSecret signs the access tokens of a stack's gateway.
const JWTSecret = "stacktest-jwt-secret-at-least-32-bytes"

// Spec describes a stack: sandboxd, agentd replicas and the gateway, on loopback, sharing one Redis.
type Spec struct {
	// RedisURL is the Redis every service uses; empty starts a dedicated redis-server.
	RedisURL string
	// Driver is sandboxd's sandbox driver: "local" (the default: host processes, nothing to set up)
	// or "docker" (skips the test, or fails it under CI, when no engine answers).
	Driver string
	// Agentd is the number of agentd replicas; 0 means 1. Replica i has AGENTD_REPLICA_ID agentd<i+1>.
	Agentd int
	// NoGateway starts no gateway: the test talks gRPC, or runs its own gateway (typically in
	// process, through InProcess with Stack.GatewayEnv). The stack still reserves the gateway's
	// address, so every service knows the public URL.
	NoGateway bool
	// Env is added to every service's environment; SandboxdEnv, AgentdEnv and GatewayEnv to one
	// service's, last. Every service drains for 0 s unless told otherwise.
	Env, SandboxdEnv, AgentdEnv, GatewayEnv map[string]string
}

// Stack is a running stack.
type Stack struct {
	RedisURL string
	// PublicURL is MGX_PUBLIC_URL of every service: http://localhost:<gateway port>.
	PublicURL string
	// GatewayAddr is the gateway's listener, SandboxdAddr and PreviewAddr sandboxd's, AgentdAddrs
	// every agentd replica's (in order).
	GatewayAddr, SandboxdAddr, PreviewAddr string
	AgentdAddrs                            []string
	// The processes; Gateway is nil with Spec.NoGateway.
	Sandboxd *Proc
	Agentd   []*Proc
	Gateway  *Proc
	// Namespace labels sandboxd's containers (SANDBOXD_NAMESPACE); RunDir is its run directory
	// (SANDBOXD_RUN_DIR: sandboxes' state, agents' sockets).
	Namespace, RunDir string

	spec        Spec
	sandboxdEnv map[string]string
}

// StartStack starts sandboxd, the agentd replicas and (unless Spec.NoGateway) the gateway as child
// processes from the prepared binaries — the package's Main must list "sandboxd", "sandbox-agent",
// "agentd" and, without NoGateway, "gateway" — and waits until each reports healthy. Everything
// stops when t ends, in reverse order (the gateway first, sandboxd destroying its sandboxes last).
func StartStack(t testing.TB, spec Spec) *Stack {
	t.Helper()
	if spec.Driver == "" {
		spec.Driver = "local"
	}
	if spec.Driver == "docker" {
		Docker(t)
	}
	if spec.Agentd <= 0 {
		spec.Agentd = 1
	}
	if spec.RedisURL == "" {
		spec.RedisURL = Redis(t)
	}
	s := &Stack{RedisURL: spec.RedisURL, spec: spec, GatewayAddr: Addr(t), SandboxdAddr: Addr(t), PreviewAddr: Addr(t),
		Namespace: "stacktest-" + uuid.NewString()[:8], RunDir: RunDir(t)}
	s.PublicURL = "http://localhost:" + portOf(s.GatewayAddr)

	s.sandboxdEnv = s.env(spec.SandboxdEnv, map[string]string{
		"SANDBOXD_LISTEN": s.SandboxdAddr, "SANDBOXD_PREVIEW_LISTEN": s.PreviewAddr, "SANDBOXD_REDIS_URL": spec.RedisURL,
		"SANDBOXD_DRIVER": spec.Driver, "SANDBOXD_RUN_DIR": s.RunDir, "SANDBOX_AGENT_BINARY": Bin(t, "sandbox-agent"),
		"SANDBOXD_NAMESPACE": s.Namespace, "SANDBOX_MEMORY": "256m", "SANDBOX_CREATE_TIMEOUT": "60",
		// The test owns its sandboxes: no warm pool, and sandboxd's graceful stop destroys them all,
		// so nothing outlives the test.
		"SANDBOX_POOL_SIZE": "0", "SANDBOXD_DESTROY_ON_EXIT": "true",
		"SANDBOXD_DRAIN_DELAY": "0s", "SANDBOXD_SHUTDOWN_TIMEOUT": "5s",
	})
	s.Sandboxd = Start(t, "sandboxd", Bin(t, "sandboxd"), s.sandboxdEnv)
	WaitGRPC(t, s.SandboxdAddr, s.Sandboxd.Done())
	for i := range spec.Agentd {
		s.StartAgentd(t, "agentd"+strconv.Itoa(i+1), nil)
	}
	if !spec.NoGateway {
		s.Gateway = Start(t, "gateway", Bin(t, "gateway"), s.GatewayEnv())
		WaitHTTP(t, s.URL()+"/healthz", 200, s.Gateway.Done())
	}
	return s
}

// StartAgentd starts another agentd replica named id (AGENTD_REPLICA_ID) against the stack, with
// extra environment on top, waits until it serves and returns it. It joins AgentdAddrs, but a
// running gateway does not learn of it.
func (s *Stack) StartAgentd(t testing.TB, id string, extra map[string]string) *Proc {
	t.Helper()
	addr := Addr(t)
	env := s.env(s.spec.AgentdEnv, map[string]string{
		"AGENTD_LISTEN": addr, "AGENTD_REDIS_URL": s.RedisURL, "SANDBOXD_ADDR": s.SandboxdAddr,
		// preview_check loads pages through sandboxd's preview listener, as in production.
		"SANDBOXD_PREVIEW_URL": "http://" + s.PreviewAddr,
		"AGENTD_LLM_PROVIDER":  "scripted", "AGENTD_REPLICA_ID": id,
		"AGENTD_DRAIN_DELAY": "0s", "AGENTD_SHUTDOWN_TIMEOUT": "3s",
	})
	maps.Copy(env, extra)
	p := Start(t, id, Bin(t, "agentd"), env)
	WaitGRPC(t, addr, p.Done())
	s.AgentdAddrs = append(s.AgentdAddrs, addr)
	s.Agentd = append(s.Agentd, p)
	return p
}

// CrashSandboxd kills sandboxd with SIGKILL (no shutdown code runs: its sandboxes stay, as after a
// crash), runs whileDown, then starts sandboxd again with the same environment on the same addresses
// and waits until it serves. The new process replaces Stack.Sandboxd.
func (s *Stack) CrashSandboxd(t testing.TB, whileDown func()) {
	t.Helper()
	s.Sandboxd.Kill()
	whileDown()
	s.Sandboxd = Start(t, "sandboxd (restarted)", Bin(t, "sandboxd"), s.sandboxdEnv)
	WaitGRPC(t, s.SandboxdAddr, s.Sandboxd.Done())
}

// URL is the gateway's base URL (http://127.0.0.1:PORT).
func (s *Stack) URL() string { return "http://" + s.GatewayAddr }

// GatewayEnv is the environment of a gateway in front of this stack, on GatewayAddr, balancing over
// every agentd replica.
func (s *Stack) GatewayEnv() map[string]string {
	return s.env(s.spec.GatewayEnv, map[string]string{
		"GATEWAY_LISTEN": s.GatewayAddr, "GATEWAY_REDIS_URL": s.RedisURL,
		"AGENTD_ADDR": strings.Join(s.AgentdAddrs, ","), "SANDBOXD_ADDR": s.SandboxdAddr,
		"SANDBOXD_PREVIEW_URL": "http://" + s.PreviewAddr,
		"GATEWAY_JWT_SECRET":   JWTSecret, "GATEWAY_RATE_LIMIT": "0",
		"GATEWAY_DRAIN_DELAY": "0s", "GATEWAY_SHUTDOWN_TIMEOUT": "5s",
	})
}

// env layers: the stack's common variables, the service's own (defaults), then the spec's.
func (s *Stack) env(specific, own map[string]string) map[string]string {
	env := map[string]string{"MGX_INTERNAL_TOKEN": Token, "MGX_LOG_LEVEL": "info", "MGX_PUBLIC_URL": s.PublicURL}
	maps.Copy(env, own)
	maps.Copy(env, s.spec.Env)
	maps.Copy(env, specific)
	return env
}

// RunDir returns a fresh directory with a short path, for sandboxd's run directory: sandbox agents'
// unix sockets live there, and socket paths are limited to 108 bytes (t.TempDir paths can be
// longer). It is removed when t ends.
func RunDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mgxsb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}
