package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// binaries the launcher and the services run; mgx-local finds the services next to itself.
var binaries = []string{"mgx-local", "gateway", "agentd", "sandboxd", "sandbox-agent"}

func TestMain(m *testing.M) { stacktest.Main(m, stacktest.Binaries(binaries...)) }

// TestMakeRun is the spine's acceptance as a test: the launcher behind `make run` brings the whole
// product up, the edge reports every service healthy, a session created through REST is stored by
// agentd and read back, and SIGINT stops every process it started.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every binary")
	}
	t.Parallel()
	st := startStack(t, nil)
	base, logs := st.base, st.logs
	gw := strings.TrimPrefix(base, "http://")
	var health struct {
		Status   string            `json:"status"`
		Services map[string]string `json:"services"`
	}
	code := doJSON(t, http.MethodGet, base+"/healthz", "", nil, &health)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", health.Status)
	for _, svc := range []string{"gateway", "agentd", "sandboxd"} {
		require.Equal(t, "SERVING", health.Services[svc], "service %s in %v", svc, health.Services)
	}

	var tok struct {
		AccessToken string `json:"access_token"`
	}
	code = doJSON(t, http.MethodPost, base+"/api/auth/login", "", map[string]string{"email": "demo@mgx.dev", "password": "mgx-demo"}, &tok)
	require.Equal(t, http.StatusOK, code)
	require.NotEmpty(t, tok.AccessToken)

	var created struct {
		ID      string `json:"id"`
		Title   string `json:"title"`
		OwnerID string `json:"owner_id"`
	}
	code = doJSON(t, http.MethodPost, base+"/api/sessions", tok.AccessToken, map[string]string{"title": "spine"}, &created)
	require.Equal(t, http.StatusCreated, code)
	require.NotEmpty(t, created.ID)

	var got struct {
		ID       string            `json:"id"`
		Title    string            `json:"title"`
		Messages []json.RawMessage `json:"messages"`
	}
	code = doJSON(t, http.MethodGet, base+"/api/sessions/"+created.ID, tok.AccessToken, nil, &got)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, created.ID, got.ID)
	require.Equal(t, "spine", got.Title)
	require.NotNil(t, got.Messages, "messages is a JSON array, not absent")

	// The session's sandbox was provisioned: sandboxd answers an exec in it.
	var execOut struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	code = doJSON(t, http.MethodPost, base+"/api/sandbox/exec", tok.AccessToken,
		map[string]any{"session_id": created.ID, "command": "echo spine-ok"}, &execOut)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "spine-ok\n", execOut.Stdout)

	// A chat message runs the scripted team to completion.
	var posted struct {
		RunID string `json:"run_id"`
	}
	code = doJSON(t, http.MethodPost, base+"/api/chat/messages", tok.AccessToken,
		map[string]string{"session_id": created.ID, "content": "build me a page"}, &posted)
	require.Equal(t, http.StatusCreated, code)
	stacktest.Eventually(t, 60*time.Second, func() bool {
		// Within the default rate limit (600 a minute) however long a loaded machine takes.
		time.Sleep(200 * time.Millisecond)
		var r struct {
			Status string `json:"status"`
		}
		return doJSON(t, http.MethodGet, base+"/api/sessions/"+created.ID+"/run", tok.AccessToken, nil, &r) == http.StatusOK &&
			r.Status == "completed"
	}, "the run completes")

	// The run's events replay over SSE (through the gateway's bridge and agentd's event stream).
	sse := readFirstSSE(t, base+"/api/sessions/"+created.ID+"/events?after_seq=0", tok.AccessToken)
	require.Contains(t, sse, `"session_id":"`+created.ID+`"`)

	// Every service exports Prometheus metrics: RPC and Redis instruments, and its own.
	for svc, want := range map[string][]string{
		"gateway":  {"rpc_client_", "http_server_", "db_client_", "mgx_gateway_event_stream_clients"},
		"agentd":   {"rpc_server_", "db_client_", `mgx_agentd_runs_finished_total{`, `status="completed"`, "mgx_agentd_llm_tokens_total", "mgx_agentd_event_streams"},
		"sandboxd": {"rpc_server_", "db_client_", "mgx_sandboxd_sandboxes", "mgx_sandboxd_pool_ready", "go_goroutines"},
	} {
		page := scrape(t, st.metrics[svc])
		for _, w := range want {
			require.Truef(t, strings.Contains(page, w), "%s /metrics has no %s", svc, w)
		}
	}

	pids := childPIDs(t, logs.String())
	require.Len(t, pids, 3, "sandboxd, agentd and gateway")

	st.stop(t)
	for name, pid := range pids {
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "%s (pid %d) left behind", name, pid)
	}
	// Nor any sandbox: every process started from this stack's binaries (the sandbox agents of the
	// local driver included) is gone.
	require.Empty(t, processesFrom(t, st.bin), "processes left behind")
	_, err := net.DialTimeout("tcp", gw, time.Second)
	require.Error(t, err, "nothing listens on the gateway port any more")
}

// stack is a running launcher with the whole product behind it.
type stack struct {
	// metrics is each service's /metrics URL.
	metrics map[string]string
	bin     string
	base    string
	logs    *stacktest.Buffer
	proc    *stacktest.Proc
}

// startStack runs mgx-local on free loopback ports with extra environment and waits for its banner.
func startStack(t *testing.T, extra map[string]string) stack {
	t.Helper()
	// A directory of this test's own: whatever runs from it afterwards was left behind by this test.
	bin := stacktest.PrivateBinDir(t, binaries...)
	t.Cleanup(func() {
		// After the launcher's own stop (registered below, so it runs first): whatever a failed run
		// left behind goes too (sandbox agents run in their own groups).
		for pid := range processesFrom(t, bin) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	port := func() string { return strconv.Itoa(stacktest.Port(t)) }
	gw, agentd, sandboxd, preview := port(), port(), port(), port()
	metrics := map[string]string{"gateway": port(), "agentd": port(), "sandboxd": port()}
	env := map[string]string{
		"GATEWAY_LISTEN": "127.0.0.1:" + gw,
		"MGX_PUBLIC_URL": "http://localhost:" + gw,
		"AGENTD_LISTEN":  "127.0.0.1:" + agentd, "AGENTD_ADDR": "127.0.0.1:" + agentd,
		"SANDBOXD_LISTEN": "127.0.0.1:" + sandboxd, "SANDBOXD_ADDR": "127.0.0.1:" + sandboxd,
		"SANDBOXD_PREVIEW_LISTEN": "127.0.0.1:" + preview, "SANDBOXD_PREVIEW_URL": "http://127.0.0.1:" + preview,
		"MGX_RUN_DIR": stacktest.RunDir(t), // short: sandbox agents' unix sockets live under it
		// Sandbox drivers have their own suites; this is about the stack, so it takes the driver that
		// needs nothing, in a namespace of its own.
		"SANDBOXD_DRIVER":         "local",
		"SANDBOXD_NAMESPACE":      "stacktest-" + gw,
		"AGENTD_LLM_PROVIDER":     "scripted",
		"GATEWAY_METRICS_LISTEN":  "127.0.0.1:" + metrics["gateway"],
		"AGENTD_METRICS_LISTEN":   "127.0.0.1:" + metrics["agentd"],
		"SANDBOXD_METRICS_LISTEN": "127.0.0.1:" + metrics["sandboxd"],
	}
	maps.Copy(env, extra)
	st := stack{bin: bin, base: "http://127.0.0.1:" + gw, metrics: map[string]string{}}
	for svc, p := range metrics {
		st.metrics[svc] = "http://127.0.0.1:" + p + "/metrics"
	}
	st.proc = stacktest.Start(t, "mgx-local", filepath.Join(bin, "mgx-local"), env)
	st.logs = st.proc.Log()
	deadline := time.Now().Add(120 * time.Second)
	for !st.logs.Contains("MGX is running.") {
		if st.proc.Exited() {
			t.Fatalf("launcher exited early: %v", st.proc.Err())
		}
		if time.Now().After(deadline) {
			procs := st.proc.Diagnose()
			st.proc.DumpStacks(10 * time.Second) // the launcher's goroutines, in its output below
			t.Fatalf("no banner within 120s; the launcher's processes:\n%s", procs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st
}

// stop sends SIGINT (Ctrl-C) and waits for a clean exit.
func (st stack) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, st.proc.Signal(syscall.SIGINT))
	select {
	case <-st.proc.Done():
		require.NoError(t, st.proc.Err(), "launcher exits 0 after SIGINT")
	case <-time.After(60 * time.Second):
		t.Fatal("launcher did not stop within 60s of SIGINT")
	}
}

// readFirstSSE opens an SSE stream, returns its first data line and disconnects.
func readFirstSSE(t *testing.T, url, token string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
			return data
		}
	}
	t.Fatalf("no SSE data line: %v", sc.Err())
	return ""
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	return string(b)
}

// processesFrom maps the pid of every live process whose executable lies in dir to that executable.
func processesFrom(t *testing.T, dir string) map[int]string {
	t.Helper()
	exes, err := filepath.Glob("/proc/[0-9]*/exe")
	require.NoError(t, err)
	out := map[int]string{}
	for _, exe := range exes {
		target, err := os.Readlink(exe)
		if err != nil || !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(exe))); err == nil {
			out[pid] = target
		}
	}
	return out
}

var startedRE = regexp.MustCompile(`msg=started .*service=(\w+) pid=(\d+)`)

func childPIDs(t *testing.T, logs string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := startedRE.FindStringSubmatch(sc.Text()); m != nil {
			pid, err := strconv.Atoi(m[2])
			require.NoError(t, err)
			pids[m[1]] = pid
		}
	}
	return pids
}

func doJSON(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s -> %d %s", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode
}
