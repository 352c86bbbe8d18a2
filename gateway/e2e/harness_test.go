package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, stacktest.Binaries("sandboxd", "sandbox-agent", "agentd", "gateway", "wsecho"))
}

// chromium is Debian's browser; a test tool's own download is never used.
const chromium = "/usr/bin/chromium"

// browserKit is what a browser test needs besides the stack: node, the console's scripts with their
// npm packages (playwright-core), chromium, and the built console the gateway serves.
type browserKit struct {
	node       string
	consoleSrc string // gateway/console
	consoleDir string // the built console (bin/console)
}

// requireBrowserKit finds the kit, or skips the test (fails it under CI=true) saying what is missing
// and how to get it. Nothing is built here: building belongs to `make`, outside the test's budget.
func requireBrowserKit(t *testing.T) browserKit {
	t.Helper()
	root, err := stacktest.RepoRoot()
	require.NoError(t, err)
	k := browserKit{consoleSrc: filepath.Join(root, "gateway", "console")}
	bin := os.Getenv(stacktest.EnvBinDir)
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(root, bin)
	}
	k.consoleDir = filepath.Join(bin, "console")
	if k.node, err = exec.LookPath("node"); err != nil {
		stacktest.Unavailable(t, errors.New("node is not installed (the browser tests drive chromium from node)"))
	}
	if _, err := os.Stat(filepath.Join(k.consoleSrc, "node_modules", "playwright-core", "package.json")); err != nil {
		stacktest.Unavailable(t, errors.New("the console's npm packages are not installed: run `make console-test` (or `npm ci` in gateway/console)"))
	}
	if _, err := os.Stat(chromium); err != nil {
		stacktest.Unavailable(t, errors.New("chromium is not installed (apt-get install chromium)"))
	}
	if _, err := os.Stat(filepath.Join(k.consoleDir, "index.html")); err != nil {
		stacktest.Unavailable(t, fmt.Errorf("no built console at %s: run `make build`", k.consoleDir))
	}
	return k
}

// script runs one of the console's node test files (gateway/console/e2e) with node's test runner,
// with env on top of the test's own environment, within budget. Its output — node's test report —
// is the test's log.
func (k browserKit) script(t *testing.T, budget time.Duration, file string, env map[string]string) {
	t.Helper()
	k.run(t, budget, env, "--test", "--test-reporter=spec", filepath.Join("e2e", file))
}

// program runs a node program of the console (a path relative to gateway/console) with args.
func (k browserKit) program(t *testing.T, budget time.Duration, file string, args ...string) {
	t.Helper()
	k.run(t, budget, nil, append([]string{file}, args...)...)
}

func (k browserKit) run(t *testing.T, budget time.Duration, env map[string]string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.node, args...)
	cmd.Dir = k.consoleSrc
	vars := map[string]string{"CHROMIUM": chromium, "CI": os.Getenv("CI")}
	maps.Copy(vars, env)
	cmd.Env = os.Environ()
	for key, v := range vars {
		cmd.Env = append(cmd.Env, key+"="+v)
	}
	// The runner and its chromium end with the test, whatever happens to it: node's test runner
	// runs each file in a child, so the whole process group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	what := "node " + strings.Join(args, " ")
	t.Logf("%s (%s):\n%s", what, time.Since(start).Round(time.Second), out.String())
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s", what, budget)
	}
	require.NoError(t, err, "%s failed (its report is above)", what)
}

// envArtifacts names the directory where browser tests keep their screenshots (make test sets it to
// .cache/test-artifacts); unset, they go to the test's artifact directory (go test -artifacts).
const envArtifacts = "MGX_TEST_ARTIFACTS"

// artifactDir is where a test's screenshots go, printed so a failure's reader finds them.
func artifactDir(t *testing.T, name string) string {
	t.Helper()
	var dir string
	if root := os.Getenv(envArtifacts); root != "" {
		dir = filepath.Join(root, t.Name(), name)
	} else {
		dir = filepath.Join(t.ArtifactDir(), name)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots of %s: %s", name, dir)
	return dir
}

// api is a user of the stack's public REST API.
type api struct {
	t     *testing.T
	base  string
	token string
}

func (a api) do(method, path string, body any) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(a.t, err)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.base+path, r)
	require.NoError(a.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, out
}

// json calls the API and decodes a 2xx answer into v.
func (a api) json(method, path string, body, v any) {
	a.t.Helper()
	status, out := a.do(method, path, body)
	require.True(a.t, status >= 200 && status < 300, "%s %s: %d %s", method, path, status, out)
	if v != nil {
		require.NoError(a.t, json.Unmarshal(out, v), "%s", out)
	}
}

func register(t *testing.T, base, email string) api {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	api{t: t, base: base}.json(http.MethodPost, "/api/auth/register", map[string]any{"email": email, "password": "correct horse battery", "name": strings.Split(email, "@")[0]}, &tok)
	require.NotEmpty(t, tok.AccessToken)
	return api{t: t, base: base, token: tok.AccessToken}
}
