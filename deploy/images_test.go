package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, stacktest.Binaries("static/gateway", "static/agentd", "static/sandboxd", "static/sandbox-agent", "static/mgx-healthcheck"))
}

// TestServiceImages builds the three service images with `make images` and runs the compose
// topology from them as far as this machine allows: no Redis image can be pulled here, so Redis is a
// redis-server on the host, and the containers share the host's network instead of a compose network.
// sandboxd runs in its container as the non-root user, drives the host's engine through the mounted
// socket and a run directory at the same path on both sides — the compose.yaml arrangement. A login,
// a session, an exec in its sandbox and a whole scripted run go through the gateway container; a
// graceful stop leaves no sandbox behind.
func TestServiceImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images")
	}
	stacktest.Docker(t)
	t.Parallel()
	root, err := stacktest.RepoRoot()
	require.NoError(t, err)
	tag := "test-" + strconv.Itoa(os.Getpid())
	// The binaries were built before the tests (stacktest.Main); this only assembles and builds images.
	make := exec.Command("make", "--no-print-directory", "docker-images", "IMAGE_TAG="+tag,
		"STATIC_BIN="+filepath.Dir(stacktest.Bin(t, "static/gateway")), "IMGCTX="+t.TempDir())
	make.Dir = root
	out, err := make.CombinedOutput()
	require.NoError(t, err, "make docker-images:\n%s", out)
	t.Cleanup(func() {
		for _, svc := range []string{"gateway", "agentd", "sandboxd"} {
			_ = exec.Command("docker", "rmi", "-f", "mgx/"+svc+":"+tag).Run()
		}
	})

	redisAddr := strings.TrimSuffix(strings.TrimPrefix(stacktest.Redis(t), "redis://"), "/0")

	runDir, err := os.MkdirTemp("", "mgx-images-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(runDir, 0o777)) // written by the container's non-root user
	t.Cleanup(func() { _ = os.RemoveAll(runDir) })
	var sock syscall.Stat_t
	require.NoError(t, syscall.Stat("/var/run/docker.sock", &sock))

	const token = "images-test-internal-token"
	gw, agentd, sbx, preview := stacktest.Addr(t), stacktest.Addr(t), stacktest.Addr(t), stacktest.Addr(t)
	namespace := "images-" + tag
	run := func(svc string, args ...string) {
		name := "mgx-" + tag + "-" + svc
		all := append([]string{"run", "-d", "--name", name, "--network", "host", "-e", "MGX_INTERNAL_TOKEN=" + token}, args...)
		out, err := exec.Command("docker", append(all, "mgx/"+svc+":"+tag)...).CombinedOutput()
		require.NoError(t, err, "docker run %s: %s", svc, out)
		t.Cleanup(func() {
			// SIGTERM first: sandboxd destroys its sandboxes on the way out.
			_ = exec.Command("docker", "stop", "-t", "20", name).Run()
			if t.Failed() {
				logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
				t.Logf("%s logs:\n%s", svc, logs)
			}
			_ = exec.Command("docker", "rm", "-f", name).Run()
		})
	}
	run("sandboxd", "--group-add", strconv.Itoa(int(sock.Gid)),
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", runDir+":"+runDir,
		"-e", "SANDBOXD_LISTEN="+sbx, "-e", "SANDBOXD_PREVIEW_LISTEN="+preview,
		"-e", "SANDBOXD_REDIS_URL=redis://"+redisAddr+"/2", "-e", "SANDBOXD_DRIVER=docker",
		"-e", "SANDBOXD_RUN_DIR="+runDir, "-e", "SANDBOXD_DESTROY_ON_EXIT=true", "-e", "SANDBOX_POOL_SIZE=0",
		"-e", "SANDBOXD_NAMESPACE="+namespace)
	run("agentd", "-e", "AGENTD_LISTEN="+agentd, "-e", "AGENTD_REDIS_URL=redis://"+redisAddr+"/1",
		"-e", "SANDBOXD_ADDR="+sbx, "-e", "AGENTD_LLM_PROVIDER=scripted")
	run("gateway", "-e", "GATEWAY_LISTEN="+gw, "-e", "GATEWAY_REDIS_URL=redis://"+redisAddr+"/0",
		"-e", "AGENTD_ADDR="+agentd, "-e", "SANDBOXD_ADDR="+sbx, "-e", "SANDBOXD_PREVIEW_URL=http://"+preview,
		"-e", "MGX_DEMO_EMAIL=demo@mgx.dev", "-e", "MGX_DEMO_PASSWORD=mgx-demo")

	base := "http://" + gw
	stacktest.WaitHTTP(t, base+"/healthz", http.StatusOK, nil)
	// The image's own health check works from inside the container.
	out, err = exec.Command("docker", "exec", "mgx-"+tag+"-agentd", "/usr/local/bin/mgx-healthcheck", "grpc", agentd).CombinedOutput()
	require.NoError(t, err, "%s", out)

	code, body := call(t, http.MethodPost, base+"/api/auth/login", "", map[string]string{"email": "demo@mgx.dev", "password": "mgx-demo"})
	require.Equal(t, http.StatusOK, code, body)
	tok := field(t, body, "access_token")
	code, body = call(t, http.MethodPost, base+"/api/sessions", tok, map[string]string{"title": "images"})
	require.Equal(t, http.StatusCreated, code, body)
	sid := field(t, body, "id")
	code, body = call(t, http.MethodPost, base+"/api/sandbox/exec", tok, map[string]string{"session_id": sid, "command": "id -u; echo from-images"})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "1000\nfrom-images\n", field(t, body, "stdout"), "commands run as the sandbox's non-root user")
	code, body = call(t, http.MethodPost, base+"/api/chat/messages", tok, map[string]string{"session_id": sid, "content": "build me a page"})
	require.Equal(t, http.StatusCreated, code, body)
	stacktest.Eventually(t, 90*time.Second, func() bool {
		code, body := call(t, http.MethodGet, base+"/api/sessions/"+sid+"/run", tok, nil)
		return code == http.StatusOK && field(t, body, "status") == "completed"
	}, "the scripted run completes")

	// A graceful stop of sandboxd removes the sandbox it created.
	require.NoError(t, exec.Command("docker", "stop", "-t", "20", "mgx-"+tag+"-sandboxd").Run())
	left, err := exec.Command("docker", "ps", "-aq", "--filter", "label=mgx.sandboxd.namespace="+namespace).Output()
	require.NoError(t, err)
	require.Empty(t, strings.TrimSpace(string(left)), "sandboxes left behind")
	// The session's workspace outlives its sandbox (two volumes: its files and its meta state); this
	// test's namespace owns them, and they go with it.
	vols, err := exec.Command("docker", "volume", "ls", "-q", "--filter", "label=mgx.sandboxd.namespace="+namespace).Output()
	require.NoError(t, err)
	require.Len(t, strings.Fields(string(vols)), 2, "the workspace's volumes outlive the sandbox")
	out, err = exec.Command("docker", append([]string{"volume", "rm"}, strings.Fields(string(vols))...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func call(t *testing.T, method, url, token string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func field(t *testing.T, body, name string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	return fmt.Sprint(m[name])
}
