package e2e_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// Iris researches for real: web_search through a SearXNG instance's JSON API and fetch_url of the
// pages it found, both faked by httptest servers speaking those formats. fetch_url refuses loopback,
// private and cloud-metadata addresses, and a redirect to one, whatever the page says.
func TestResearchSearchesAndFetches(t *testing.T) {
	var searches []string
	searx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		searches = append(searches, r.URL.Query().Get("q")+"|"+r.URL.Query().Get("format"))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"query": r.URL.Query().Get("q"), "results": []map[string]any{
			{"url": "https://vitejs.dev/guide/", "title": "Getting Started | Vite", "content": "Vite is a build tool that aims to provide a faster development experience."},
			{"url": "https://react.dev/learn", "title": "Quick Start – React", "content": "This page will give you an introduction to React."},
		}})
	}))
	defer searx.Close()

	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("internal secrets"))
	}))
	defer internal.Close()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/article":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(`<!doctype html><html><head><title>Choosing a bundler</title></head><body>
<nav><a href="/">Home</a></nav><article><h1>Choosing a bundler</h1>
<p>Vite starts a dev server in <strong>milliseconds</strong> because it serves native ES modules.</p>
<p>Read the <a href="https://vitejs.dev/guide/why">rationale</a>.</p></article></body></html>`))
		case "/to-internal":
			http.Redirect(w, r, internal.URL+"/", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer site.Close()
	_, sitePort, _ := net.SplitHostPort(site.Listener.Addr().String())

	s := startToolStack(t, map[string]brain{
		"mike": delegate("iris", "research bundlers"),
		"iris": steps(
			do("web_search", map[string]any{"query": "fastest javascript bundler", "count": 2}),
			do("fetch_url", map[string]any{"url": site.URL + "/article"}),
			do("fetch_url", map[string]any{"url": internal.URL + "/"}),
			do("fetch_url", map[string]any{"url": "http://10.0.0.1/"}),
			do("fetch_url", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}),
			do("fetch_url", map[string]any{"url": site.URL + "/to-internal"}),
			do("fetch_url", map[string]any{"url": site.URL + "/to-metadata"}),
			do("file_write", map[string]any{"path": "docs/bundlers.md", "content": "# Bundlers\nVite is fast [1].\n"}),
			do("file_write", map[string]any{"path": "src/hack.js", "content": "x"}),
		),
	}, stackOptions{env: map[string]string{
		"SEARXNG_URL": searx.URL,
		// Only the site's own endpoint is let through: the test's servers all live on loopback.
		"AGENTD_FETCH_ALLOW": "127.0.0.1:" + sitePort,
	}})
	sid := s.session(t, "alice")
	evs := s.run(t, "alice", sid, "research bundlers")

	out, ev := s.sentResult(t, evs, "web_search", 0)
	require.False(t, isError(ev), out)
	require.Contains(t, out, "Getting Started | Vite")
	require.Contains(t, out, "https://react.dev/learn")
	require.Equal(t, []string{"fastest javascript bundler|json"}, searches, "SearXNG's JSON API was asked")

	page, ev := s.sentResult(t, evs, "fetch_url", 0)
	require.False(t, isError(ev), page)
	require.Contains(t, page, "Title: Choosing a bundler")
	require.Contains(t, page, "Vite starts a dev server in milliseconds because it serves native ES modules.")
	require.Contains(t, page, "https://vitejs.dev/guide/why", "links are cited")

	for i, want := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "127.0.0.1", "169.254.169.254"} {
		out, ev := s.sentResult(t, evs, "fetch_url", i+1)
		require.True(t, isError(ev), out)
		require.Contains(t, out, "refused to connect to "+want, "call %d: %s", i+1, out)
		require.NotContains(t, out, "internal secrets")
	}
	require.Len(t, callsOf(evs, "fetch_url"), 6)

	_, ev = s.sentResult(t, evs, "file_write", 0)
	require.False(t, isError(ev))
	out, ev = s.sentResult(t, evs, "file_write", 1)
	require.True(t, isError(ev), "Iris writes under docs/ only")
	require.Contains(t, out, "you may only write under docs/")
}

// Without a search provider web_search is in no role's tool list, and the model is never offered it.
func TestWebSearchIsLeftOutWithoutAProvider(t *testing.T) {
	s := startToolStack(t, map[string]brain{"mike": delegate("iris", "research")}, stackOptions{env: map[string]string{"AGENTD_SEARCH_PROVIDER": "none"}})
	sid := s.session(t, "alice")
	s.run(t, "alice", sid, "research")
	var sawIris bool
	for _, r := range s.model.Requests() {
		require.NotContains(t, r.Tools, "web_search", "%s was offered web_search", r.Agent)
		if r.Agent == "iris" {
			sawIris = true
			require.Contains(t, r.Tools, "fetch_url")
		}
	}
	require.True(t, sawIris)
	cc, err := grpcclient.Dial(s.agentdAddr, grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	defer cc.Close()
	agents, err := agentdv1.NewAgentServiceClient(cc).ListAgents(authn.WithUser(t.Context(), "alice"), &agentdv1.ListAgentsRequest{})
	require.NoError(t, err)
	for _, a := range agents.GetAgents() {
		require.NotContains(t, a.GetTools(), "web_search", a.GetName())
	}
}

// David analyses with Python in the sandbox: what his code prints comes back like a command's
// output, and the chart it writes becomes an artifact. The local driver runs the host's python3 (the
// busybox test image has none); the chart is drawn without matplotlib, so any python3 will do.
func TestPythonRunMakesAChartArtifact(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		if stacktest.CI() {
			t.Fatal("CI=true: python3 is required")
		}
		t.Skip("python3 is not installed")
	}
	code := strings.TrimSpace(`
import struct, zlib, os, statistics
sales = [12, 18, 9, 22, 30]
print("mean sales:", statistics.mean(sales))
w, h = 60, 40
rows = b"".join(b"\x00" + bytes(255 if y < h - 8 * (x // 12) else 40 for x in range(w) for _ in range(3)) for y in range(h))
def chunk(kind, data):
    c = struct.pack(">I", len(data)) + kind + data
    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
os.makedirs("charts", exist_ok=True)
open("charts/sales.png", "wb").write(png)
open("charts/not-an-image.png", "w").write("this is text")
import sys; print("warning: 2 rows skipped", file=sys.stderr)
`)
	s := startToolStack(t, map[string]brain{
		"mike":  delegate("david", "analyse sales"),
		"david": steps(do("python_run", map[string]any{"code": code}), do("python_run", map[string]any{"code": "raise ValueError('bad column')"})),
	}, stackOptions{})
	sid := s.session(t, "alice")
	evs := s.run(t, "alice", sid, "analyse sales")

	out, ev := s.sentResult(t, evs, "python_run", 0)
	require.False(t, isError(ev), out)
	require.Contains(t, out, "exit code: 0")
	require.Contains(t, out, "mean sales: 18.2")
	require.Contains(t, out, "warning: 2 rows skipped")
	require.Contains(t, out, "Images shown to the user as artifacts: charts/sales.png.")
	require.Contains(t, out, "charts/not-an-image.png could not be kept as an artifact")

	id := callID(callsOf(evs, "python_run")[0])
	require.Subset(t, changedPaths(evs, id), []string{"charts", "charts/sales.png"})
	var art *agentdv1.Event
	for _, e := range evs {
		if e.GetType() == "artifact" {
			require.Nil(t, art, "one artifact")
			art = e
		}
	}
	require.NotNil(t, art, describe(evs))
	f := art.GetData().GetFields()
	require.Equal(t, "sales.png", f["name"].GetStringValue())
	require.Equal(t, "image/png", f["content_type"].GetStringValue())
	require.EqualValues(t, 60, f["width"].GetNumberValue())
	require.EqualValues(t, 40, f["height"].GetNumberValue())
	require.True(t, strings.EqualFold("david", art.GetAgent()), "by David: %s", art.GetAgent())

	out, ev = s.sentResult(t, evs, "python_run", 1)
	require.True(t, isError(ev))
	require.Contains(t, out, "ValueError: bad column")
	require.Contains(t, out, `File "<python_run>", line 1`)
}
