package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// productImage is the sandbox image `make sandbox-image` builds.
const productImage = "mgx-sandbox:latest"

// requireProductImage skips (fails under CI=true, where the image is built before the tests) a test
// that needs the product image when the engine does not have it.
func requireProductImage(t *testing.T) {
	t.Helper()
	stacktest.Docker(t)
	if out, err := exec.CommandContext(t.Context(), "docker", "image", "inspect", "--format", "{{.Id}}", productImage).CombinedOutput(); err != nil {
		if stacktest.CI() {
			t.Fatalf("CI=true: the product image is required (make sandbox-image): %v: %s", err, out)
		}
		t.Skipf("the product image %s is not built (make sandbox-image): %s", productImage, strings.TrimSpace(string(out)))
	}
}

// Hot reload, proven in a browser: in a Docker sandbox of the product image a Vite + React app is
// created and installed from the npm registry, its dev server runs as a background process, and
// headless Chromium opens the preview URL through the gateway. A source file changed through the
// files API then changes the rendered page without a navigation: HMR over the preview WebSocket.
func TestViteHotReloadThroughTheGateway(t *testing.T) {
	requireChromium(t)
	requireProductImage(t)
	ns := "stacktest-hmr-" + uuid.NewString()[:8]
	// Registered before the stack, so it runs after the stack stopped and its containers are gone:
	// the session's workspace volumes outlive their sandbox by design; this test's go.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "docker", "volume", "ls", "-q", "--filter", "label=mgx.sandboxd.namespace="+ns).Output()
		for _, v := range strings.Fields(string(out)) {
			_ = exec.CommandContext(ctx, "docker", "volume", "rm", v).Run()
		}
	})
	st := stacktest.StartStack(t, stacktest.Spec{Driver: "docker", SandboxdEnv: map[string]string{
		"SANDBOXD_NAMESPACE": ns, "SANDBOX_IMAGE": productImage, "SANDBOX_MEMORY": "2g", "SANDBOX_PIDS_LIMIT": "1024",
		"SANDBOX_CPU": "2",
	}})
	conn := dial(t, st.AgentdAddrs[0], st.SandboxdAddr)
	s := &toolStack{st: st, gatewayURL: st.URL(), c: conn}
	owner := s.registerREST(t, "hmr@example.com")
	sid := s.createSessionREST(t, owner)

	// Setup is not what is tested: the owner's commands go to sandboxd directly, with a time budget
	// the public exec endpoint does not grant.
	ctx := authn.WithUser(t.Context(), owner.id)
	run := func(command string, timeout float64) {
		t.Helper()
		begin := time.Now()
		res, err := conn.sandbox.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: command, Timeout: timeout})
		require.NoError(t, err)
		require.Zero(t, res.GetExitCode(), "%s\nstdout:\n%s\nstderr:\n%s", command, res.GetStdout(), res.GetStderr())
		t.Logf("%s: %s", command, time.Since(begin).Round(100*time.Millisecond))
	}
	// The sandbox exists once a command ran in it; its npm cache is then seeded from the last run's.
	run("true", 60)
	cache := seedNPMCache(t, ns)
	run("npm create --yes --prefer-offline vite@6.5.0 app -- --template react", 300)
	run("cd app && npm install --prefer-offline --no-audit --no-fund --loglevel=error && npm install --prefer-offline --no-audit --no-fund --loglevel=error -D @vitejs/plugin-react@4.7.0", 600)
	cache.save(t)

	const port = 5173
	r := s.rest(t, owner, http.MethodPost, "/api/sandbox/"+sid+"/processes", map[string]any{
		"session_id": sid, "name": "dev", "cwd": "app",
		"command": fmt.Sprintf("exec npx vite --host 127.0.0.1 --port %d --strictPort", port),
	})
	require.Less(t, r.status, 300, r.body)
	var previewURL string
	stacktest.Eventually(t, 90*time.Second, func() bool {
		p := s.getREST(t, owner, "/api/sandbox/preview/"+sid)
		var body struct {
			Previews []struct {
				ContainerPort int    `json:"container_port"`
				URL           string `json:"url"`
			} `json:"previews"`
		}
		if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &body) != nil {
			return false
		}
		for _, pv := range body.Previews {
			if pv.ContainerPort == port {
				previewURL = pv.URL
				return true
			}
		}
		return false
	}, "the dev server never listened on %d", port)
	require.Contains(t, previewURL, st.URL()[strings.LastIndex(st.URL(), ":"):], "the preview goes through the gateway")

	// Chromium resolves every *.localhost name to the loopback address, so the preview origin
	// (p5173-<session>.preview.localhost:<gateway port>) reaches the gateway as it would a browser.
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"), chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(browser, 3*time.Minute)
	defer cancel()

	var last string
	heading := func() string {
		last, _ = chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("h1")||{}).textContent||""`))
		return last
	}
	_, err := chromedp.Run(bctx, chromedp.Navigate(previewURL))
	require.NoError(t, err)
	stacktest.Eventually(t, 90*time.Second, func() bool { return heading() == "Vite + React" }, "the app never rendered")
	// A mark on this document: a reload or a navigation would lose it.
	_, err = chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__mgxMark = "same document"; true`))
	require.NoError(t, err)
	stacktest.Eventually(t, 30*time.Second, func() bool {
		loaded, _ := chromedp.Run(bctx, chromedp.Evaluate[bool](`performance.getEntriesByType("resource").some(e => e.name.includes("/@vite/client"))`))
		return loaded
	}, "the page never loaded Vite's HMR client")

	app := s.rest(t, owner, http.MethodGet, "/api/files/"+sid+"?path=app/src/App.jsx", nil)
	require.Equal(t, http.StatusOK, app.status, app.body)
	var file struct {
		Content string `json:"content"`
	}
	require.NoError(t, json.Unmarshal([]byte(app.body), &file))
	require.Contains(t, file.Content, "<h1>Vite + React</h1>")
	begin := time.Now()
	w := s.rest(t, owner, http.MethodPut, "/api/files/"+sid, map[string]any{
		"path": "app/src/App.jsx", "content": strings.Replace(file.Content, "<h1>Vite + React</h1>", "<h1>Hot reloaded</h1>", 1),
	})
	require.Equal(t, http.StatusOK, w.status, w.body)
	stacktest.Eventually(t, 60*time.Second, func() bool { return heading() == "Hot reloaded" }, "the change never reached the page")
	t.Logf("heading: %q", last)
	t.Logf("file write to rendered change: %s", time.Since(begin).Round(10*time.Millisecond))
	mark, err := chromedp.Run(bctx, chromedp.Evaluate[string](`window.__mgxMark || ""`))
	require.NoError(t, err)
	require.Equal(t, "same document", mark, "the page changed without a navigation or reload")
}

// npmCache keeps this test's npm downloads between runs, so a run after the first installs from it
// rather than the registry: the sandbox's ~/.npm is seeded from a directory under the user's cache
// before the installs and copied back after, through the engine (docker exec with tar), because the sandbox's
// own volumes belong to its session and go with it. A cache that cannot be used or kept is noted,
// never a failure: the installs then go to the registry as a first run's do.
type npmCache struct {
	dir       string
	container string
}

// sandboxHome is the home of the product image's user, whom SANDBOX_USER (1000:1000) names.
const sandboxHome = "/home/node"

// pipeShell runs a pipeline through bash with pipefail, so a failing first stage fails it.
func pipeShell(t *testing.T, pipeline string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", pipeline).CombinedOutput()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func seedNPMCache(t *testing.T, namespace string) npmCache {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Logf("npm cache: no cache directory: %v", err)
		return npmCache{}
	}
	c := npmCache{dir: filepath.Join(base, "mgx", "hmr-npm")}
	out, err := exec.CommandContext(t.Context(), "docker", "ps", "-q", "--filter", "label=mgx.sandboxd.namespace="+namespace).Output()
	if ids := strings.Fields(string(out)); err != nil || len(ids) != 1 {
		t.Logf("npm cache: the session's sandbox not found (%v, %q)", err, out)
		return npmCache{}
	}
	c.container = strings.Fields(string(out))[0]
	if entries, err := os.ReadDir(c.dir); err != nil || len(entries) == 0 {
		t.Logf("npm cache: none yet at %s; this run fills it", c.dir)
		return c
	}
	// Unpacked by the sandbox's own user (docker exec runs as the container's user), so npm inside
	// owns what it finds and may add to it; `docker cp` would leave it root's.
	if out, err := pipeShell(t, "tar -C "+shellQuote(c.dir)+" -c . | docker exec -i "+c.container+
		" sh -c 'mkdir -p "+sandboxHome+"/.npm && tar -x -C "+sandboxHome+"/.npm'"); err != nil {
		t.Logf("npm cache: seeding failed: %v: %s", err, out)
	} else {
		t.Logf("npm cache: seeded from %s", c.dir)
	}
	return c
}

// save replaces the kept cache with the sandbox's, owned by the sandbox user for the next seeding.
func (c npmCache) save(t *testing.T) {
	t.Helper()
	if c.container == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.dir), 0o755); err != nil {
		t.Logf("npm cache: %v", err)
		return
	}
	tmp, err := os.MkdirTemp(filepath.Dir(c.dir), ".hmr-npm-")
	if err != nil {
		t.Logf("npm cache: %v", err)
		return
	}
	defer os.RemoveAll(tmp)
	if out, err := pipeShell(t, "docker exec "+c.container+" tar -c -C "+sandboxHome+"/.npm . | tar -x -C "+shellQuote(tmp)); err != nil {
		t.Logf("npm cache: copying it out failed: %v: %s", err, out)
		return
	}
	old := c.dir + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(c.dir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Logf("npm cache: %v", err)
		return
	}
	if err := os.Rename(tmp, c.dir); err != nil {
		t.Logf("npm cache: %v", err)
		return
	}
	_ = os.RemoveAll(old)
	t.Logf("npm cache: kept in %s for the next run", c.dir)
}
