package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// TestConsoleJourney runs the console's journey (gateway/console/e2e/journey.test.mjs) in chromium
// against the whole product with the offline scripted provider: register, start a session, Mike's
// and Alex's messages live, the plan, the files, the preview rendering the app inside the console's
// frame, the screenshot artifact, a reload, a dropped stream, cancelling a run, signing out.
func TestConsoleJourney(t *testing.T) {
	t.Parallel()
	k := requireBrowserKit(t)
	// A pause before Mike's first answer, so a run lasts long enough for the journey to cancel it.
	script := filepath.Join(t.TempDir(), "slow.yaml")
	k.program(t, 30*time.Second, filepath.Join("e2e", "slow-script.mjs"), script, "4000")

	s := stacktest.StartStack(t, stacktest.Spec{
		AgentdEnv: map[string]string{
			"AGENTD_LLM_PROVIDER": "scripted", "AGENTD_SCRIPT_FILE": script,
			// The app's server listens on a port of its own: the local driver's sandboxes share the host.
			"AGENTD_SCRIPTED_PORT": strconv.Itoa(stacktest.Port(t)),
		},
		GatewayEnv: map[string]string{"GATEWAY_CONSOLE_DIR": k.consoleDir},
	})
	// The console on MGX_PUBLIC_URL (http://localhost:<port>), so its preview URLs
	// (p<port>-<capability>.preview.localhost:<port>) are the ones a user gets; chromium resolves
	// every *.localhost name to loopback itself.
	k.script(t, 12*time.Minute, "journey.test.mjs", map[string]string{
		"MGX_URL":   s.PublicURL,
		"ARTIFACTS": artifactDir(t, "journey"),
	})
}

// TestPreviewEmbedsInAnotherOrigin frames a preview URL in a page of another origin
// (http://localhost:<other port>) and has chromium check, inside the frame, the app's page, its
// script and stylesheet, and a WebSocket echo through the preview (gateway/console/e2e/embed.test.mjs).
func TestPreviewEmbedsInAnotherOrigin(t *testing.T) {
	t.Parallel()
	k := requireBrowserKit(t)
	s := stacktest.StartStack(t, stacktest.Spec{})
	user := register(t, s.URL(), "embed@example.com")
	var session struct {
		ID string `json:"id"`
	}
	user.json(http.MethodPost, "/api/sessions", map[string]any{}, &session)
	require.NotEmpty(t, session.ID)

	// The dev server: wsecho serving the app's files, with the echo at /ws as a dev server's HMR
	// socket. The local driver runs sandbox processes on the host, so the binary runs from where
	// make put it.
	for path, content := range appFiles {
		user.json(http.MethodPut, "/api/files/"+session.ID, map[string]any{"path": "site/" + path, "content": content}, nil)
	}
	port := strconv.Itoa(stacktest.Port(t))
	user.json(http.MethodPost, "/api/sandbox/"+session.ID+"/processes", map[string]any{
		"session_id": session.ID, "name": "dev",
		"command": "exec " + stacktest.Bin(t, "wsecho") + " -addr 127.0.0.1:" + port + " -dir site",
	}, nil)
	previewURL := waitPreview(t, user, session.ID, port)

	embed := servePage(t, previewURL)
	k.script(t, 3*time.Minute, "embed.test.mjs", map[string]string{
		"EMBED_URL":   embed,
		"PREVIEW_URL": previewURL,
		"ARTIFACTS":   artifactDir(t, "embed"),
	})
}

// appFiles is the framed app: a page, a stylesheet, and a script that reports where it runs and
// echoes twice over a WebSocket to its own origin (what a dev server's HMR client does).
var appFiles = map[string]string{
	"index.html": `<!doctype html>
<html><head><meta charset="utf-8"><title>Preview app</title><link rel="stylesheet" href="/style.css"></head>
<body><h1 id="title">Hello from inside the preview</h1><p id="asset">script not loaded</p><p id="ws">no echo</p>
<script src="/app.js"></script></body></html>
`,
	"style.css": "h1 { color: rgb(1, 2, 3); }\n",
	"app.js": `const asset = document.getElementById("asset");
asset.textContent = "script loaded on " + location.host;
asset.dataset.ok = "";
const out = document.getElementById("ws");
const word = "ping-" + Math.random().toString(36).slice(2, 10);
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
let trips = 0;
ws.onopen = () => ws.send(word);
ws.onmessage = (e) => {
  if (e.data !== word) { out.textContent = "unexpected: " + e.data; return; }
  if (++trips < 2) { ws.send(word); return; }
  out.textContent = "echo: " + e.data + " (2 round trips)";
  out.dataset.ok = "";
  ws.close();
};
ws.onerror = () => { out.textContent = "websocket error"; };
`,
}

// waitPreview polls the session's preview list until port shows up, and returns its URL.
func waitPreview(t *testing.T, user api, sessionID, port string) string {
	t.Helper()
	var url string
	require.Eventually(t, func() bool {
		var p struct {
			Previews []struct {
				ContainerPort int    `json:"container_port"`
				URL           string `json:"url"`
			} `json:"previews"`
		}
		user.json(http.MethodGet, "/api/sandbox/preview/"+sessionID, nil, &p)
		for _, pv := range p.Previews {
			if strconv.Itoa(pv.ContainerPort) == port {
				url = pv.URL
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "port %s never showed up as a preview", port)
	return url
}

// servePage serves, on a port of its own, a page of another site framing previewURL, and returns
// its address as a browser would type it (http://localhost:<port>/).
func servePage(t *testing.T, previewURL string) string {
	t.Helper()
	page := template.Must(template.New("embed").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Another site</title><link rel="icon" href="data:,"></head>
<body><h1>Another site</h1><p>It embeds a preview of an MGX sandbox:</p>
<iframe id="preview" src="{{.}}" width="900" height="500" title="preview"></iframe></body></html>
`))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = page.Execute(w, previewURL)
		}),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("embedding page: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return fmt.Sprintf("http://localhost:%d/", ln.Addr().(*net.TCPAddr).Port)
}
