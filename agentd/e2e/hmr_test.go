package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
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
	run("npm create --yes vite@6.5.0 app -- --template react", 300)
	run("cd app && npm install --no-audit --no-fund --loglevel=error && npm install --no-audit --no-fund --loglevel=error -D @vitejs/plugin-react@4.7.0", 600)

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
