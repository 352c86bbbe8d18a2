package browser

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func testLog() *slog.Logger {
	if os.Getenv("AGENTD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBrowser starts a real chromium for t and, when t ends, closes it and checks that nothing of
// it is left: no process with its profile, no profile directory.
func startBrowser(t *testing.T, cfg Config) *Browser {
	t.Helper()
	path := cfg.withDefaults().ExecPath
	if _, err := exec.LookPath(path); err != nil {
		if stacktest.CI() {
			t.Fatalf("chromium not found at %s (CI=true: browser tests must run; install Debian's chromium)", path)
		}
		t.Skipf("chromium not found at %s; skipping (apt-get install chromium to run this test)", path)
	}
	b, err := New(cfg, testLog())
	require.NoError(t, err)
	t.Cleanup(func() {
		pid := b.PID()
		if pid == 0 { // closed by the test and checked there, or died and not restarted
			require.NoError(t, b.Close())
			return
		}
		tree, dir := processTree(pid), userDataDir(t, pid)
		require.NoError(t, b.Close())
		requireGone(t, tree, dir)
	})
	return b
}

// userDataDir reads the temporary profile of the chromium with pid from its command line.
func userDataDir(t *testing.T, pid int) string {
	t.Helper()
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	require.NoError(t, err)
	for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
		if dir, ok := strings.CutPrefix(string(arg), "--user-data-dir="); ok {
			return dir
		}
	}
	t.Fatalf("chromium %d runs without --user-data-dir", pid)
	return ""
}

// requireGone checks that the browser's processes (tree, as seen while it ran) and any other that
// used its profile have exited, and that the profile and the temporary home holding it were removed.
func requireGone(t *testing.T, tree []int, dir string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, pid := range tree {
			if processRuns(pid) {
				return false
			}
		}
		return len(processesUsing(dir)) == 0
	}, 10*time.Second, 50*time.Millisecond, "chromium processes %v outlived the browser", tree)
	for _, d := range []string{dir, filepath.Dir(dir)} {
		_, err := os.Stat(d)
		require.True(t, os.IsNotExist(err), "%s was not removed", d)
	}
}

// processTree returns pid and its descendants.
func processTree(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 {
			parent[p], _ = strconv.Atoi(fields[1])
		}
	}
	tree := []int{pid}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if slices.Contains(tree, pp) && !slices.Contains(tree, p) {
				tree = append(tree, p)
				changed = true
			}
		}
	}
	return tree
}

func processRuns(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie has exited; only its parent has not reaped it yet.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func processesUsing(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Chromium's helpers rewrite their command lines with spaces between the arguments.
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("--user-data-dir="+dir)) && processRuns(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// site serves test pages by path.
func site(t *testing.T, pages map[string]http.HandlerFunc) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for p, h := range pages {
		mux.HandleFunc(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func html(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, body)
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

func TestCheck(t *testing.T) {
	port := closedPort(t)
	srv := site(t, map[string]http.HandlerFunc{
		"/": html(`<!doctype html><html><head><title>Todo App</title>
			<style>body{margin:0;background:#ff0000;font:16px sans-serif}</style></head>
			<body><h1>My   Todos</h1>
			<ul><li>Buy milk</li><li>Write   tests</li></ul></body></html>`),
		"/throws": html(`<!doctype html><title>Broken</title><body><p>half rendered</p>
			<script>function renderList(items) { return items.map(i => i.name) }
			renderList(undefined);</script></body>`),
		"/rejects": html(`<!doctype html><title>Async</title><body>
			<script>Promise.reject(new Error("could not load /api/todos"))</script></body>`),
		"/console": html(`<!doctype html><title>Console</title><body>
			<script>console.log("just info"); console.error("failed to load %s: %d", "users", 500);
			console.warn("deprecated prop", {a: 1}); console.assert(1 === 2, "one is not two")</script></body>`),
		"/assets": html(fmt.Sprintf(`<!doctype html><title>Assets</title><body>
			<img src="/missing.png"><script src="http://127.0.0.1:%d/app.js"></script>
			<script>fetch("/api/broken").catch(() => {})</script></body>`, port)),
		"/missing.png": http.NotFound,
		"/api/broken": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		},
		"/gone": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "<title>Not here</title><h1>404: page not found</h1>")
		},
		"/redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/?from=redirect", http.StatusFound)
		},
		"/dialog": html(`<!doctype html><title>Dialog</title><body><p id=p>before</p>
			<script>alert("hello there"); document.getElementById("p").textContent = "after the alert"</script></body>`),
		"/fetches": html(`<!doctype html><title>SPA</title><body><div id=root>Loading…</div>
			<script>setTimeout(() => fetch("/api/items").then(r => r.json()).then(items => {
				document.getElementById("root").textContent = "Items: " + items.join(", ")
			}), 100)</script></body>`),
		"/api/items": func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(700 * time.Millisecond)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `["apples","pears"]`)
		},
		"/timer": html(`<!doctype html><title>Timer</title><body><div id=root>waiting</div>
			<script>setTimeout(() => { document.getElementById("root").textContent = "rendered late" }, 1500)</script></body>`),
		"/blank": html(`<!doctype html><title>Vite App</title><body><div id="root"></div></body>`),
		"/csp": html(`<!doctype html><meta http-equiv="Content-Security-Policy" content="script-src 'none'">
			<title>CSP</title><body>text<script>document.title = "ran"</script></body>`),
	})
	// The production URLs are p<port>-<session>.preview.localhost:<port>; chromium resolves
	// *.localhost to loopback itself, so the test server is reached under such a name too.
	_, srvPort, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	preview := "http://p5173-s1.preview.localhost:" + srvPort

	b := startBrowser(t, Config{})

	tests := []struct {
		name  string
		url   string
		wait  time.Duration
		check func(t *testing.T, r *Result)
	}{
		{name: "page that renders", url: preview + "/?token=secret-token", check: func(t *testing.T, r *Result) {
			require.Equal(t, 200, r.Status)
			require.Equal(t, "Todo App", r.Title)
			require.Equal(t, "My Todos\nBuy milk\nWrite tests", r.Text)
			require.True(t, r.Loaded)
			require.True(t, r.Settled)
			require.False(t, r.TimedOut)
			require.Empty(t, r.Console)
			require.Empty(t, r.Exceptions)
			require.Empty(t, r.FailedRequests)
			img, err := png.Decode(bytes.NewReader(r.Screenshot))
			require.NoError(t, err, "the screenshot must be a valid PNG")
			require.Equal(t, 1280, img.Bounds().Dx())
			require.Equal(t, 800, img.Bounds().Dy())
			require.Equal(t, 1280, r.ScreenshotWidth)
			// The page's red background is what was captured.
			cr, cg, cb, _ := img.At(1000, 700).RGBA()
			require.Equal(t, color.RGBA64{R: 0xffff}, color.RGBA64{R: uint16(cr), G: uint16(cg), B: uint16(cb)})
			report := r.Report()
			require.Contains(t, report, "HTTP status: 200 OK")
			require.Contains(t, report, "Title: Todo App")
			require.Contains(t, report, "No console errors, uncaught exceptions or failed requests.")
			require.Contains(t, report, "Screenshot: 1280×800 PNG")
			require.NotContains(t, report, "secret-token")
		}},
		{name: "uncaught exception", url: srv.URL + "/throws", check: func(t *testing.T, r *Result) {
			require.Equal(t, 200, r.Status)
			require.Len(t, r.Exceptions, 1)
			e := r.Exceptions[0]
			require.Equal(t, "TypeError: Cannot read properties of undefined (reading 'map')", e.Message)
			require.Contains(t, e.Stack, "at renderList ("+srv.URL+"/throws:")
			require.Contains(t, r.Text, "half rendered")
			require.Contains(t, r.Report(), "Uncaught exceptions (1):\n- TypeError: Cannot read properties of undefined (reading 'map')\n    at renderList")
		}},
		{name: "unhandled rejection", url: srv.URL + "/rejects", check: func(t *testing.T, r *Result) {
			require.Len(t, r.Exceptions, 1)
			require.Equal(t, "Unhandled promise rejection: Error: could not load /api/todos", r.Exceptions[0].Message)
		}},
		{name: "console errors and warnings", url: srv.URL + "/console", check: func(t *testing.T, r *Result) {
			require.Equal(t, []string{"error: failed to load users: 500", "warning: deprecated prop Object", "error: Assertion failed: one is not two"}, consoleLines(r))
			require.Contains(t, r.Console[0].Location, srv.URL+"/console:")
			require.Contains(t, r.Report(), "- [error] failed to load users: 500 ("+srv.URL+"/console:")
		}},
		{name: "failed assets", url: srv.URL + "/assets", check: func(t *testing.T, r *Result) {
			require.Equal(t, 200, r.Status)
			got := map[string]FailedRequest{}
			for _, f := range r.FailedRequests {
				got[f.URL] = f
			}
			require.Len(t, got, 3, "%+v", r.FailedRequests)
			require.Equal(t, FailedRequest{URL: srv.URL + "/missing.png", Method: "GET", Type: "Image", Status: 404}, got[srv.URL+"/missing.png"])
			require.Equal(t, FailedRequest{URL: srv.URL + "/api/broken", Method: "GET", Type: "Fetch", Status: 500}, got[srv.URL+"/api/broken"])
			// Another loopback port is not the preview's: the egress guard refuses it.
			refused := got[fmt.Sprintf("http://127.0.0.1:%d/app.js", port)]
			require.Equal(t, "Script", refused.Type)
			require.Equal(t, "blocked: loopback, not the port of the preview being checked", refused.Error)
			require.Contains(t, r.Report(), "- GET "+srv.URL+"/missing.png → HTTP 404")
		}},
		{name: "404 document", url: srv.URL + "/gone", check: func(t *testing.T, r *Result) {
			require.Equal(t, 404, r.Status)
			require.Equal(t, "Not Found", r.StatusText)
			require.Equal(t, "Not here", r.Title)
			require.Equal(t, "404: page not found", r.Text)
			require.Empty(t, r.FailedRequests, "the document's own status is reported once")
			require.Contains(t, r.Report(), "HTTP status: 404 Not Found")
		}},
		{name: "redirect", url: srv.URL + "/redirect", check: func(t *testing.T, r *Result) {
			require.Equal(t, 200, r.Status)
			require.Equal(t, srv.URL+"/?from=redirect", r.FinalURL)
			require.Equal(t, "Todo App", r.Title)
		}},
		{name: "dialog is dismissed", url: srv.URL + "/dialog", check: func(t *testing.T, r *Result) {
			require.Equal(t, "after the alert", r.Text)
			require.Equal(t, []string{`dialog: alert("hello there") was dismissed by the check`}, consoleLines(r))
		}},
		{name: "waits for the network to go quiet", url: srv.URL + "/fetches", check: func(t *testing.T, r *Result) {
			require.True(t, r.Settled)
			require.Equal(t, "Items: apples, pears", r.Text)
		}},
		{name: "wait gives timers time", url: srv.URL + "/timer", wait: 2500 * time.Millisecond, check: func(t *testing.T, r *Result) {
			require.Equal(t, "rendered late", r.Text)
			require.GreaterOrEqual(t, r.Duration, 2500*time.Millisecond)
		}},
		{name: "blank page", url: srv.URL + "/blank", check: func(t *testing.T, r *Result) {
			require.Equal(t, 200, r.Status)
			require.Empty(t, r.Text)
			require.Contains(t, r.Report(), "Visible text: none (the page renders no text; it may be blank)")
			require.NotEmpty(t, r.Screenshot)
		}},
		{name: "browser-reported error", url: srv.URL + "/csp", check: func(t *testing.T, r *Result) {
			require.Equal(t, "CSP", r.Title, "the inline script was blocked")
			require.Len(t, r.Console, 1)
			require.Equal(t, "error", r.Console[0].Level)
			require.Contains(t, r.Console[0].Text, "Content Security Policy")
		}},
		{name: "server down", url: fmt.Sprintf("http://127.0.0.1:%d/", port), check: func(t *testing.T, r *Result) {
			require.Equal(t, "net::ERR_CONNECTION_REFUSED", r.LoadError)
			require.Zero(t, r.Status)
			require.Nil(t, r.Screenshot)
			require.Contains(t, r.Report(), "The page could not be loaded: net::ERR_CONNECTION_REFUSED")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := b.Check(t.Context(), Request{URL: tt.url, Wait: tt.wait})
			require.NoError(t, err)
			tt.check(t, r)
		})
	}
}

func consoleLines(r *Result) []string {
	var out []string
	for _, m := range r.Console {
		out = append(out, m.Level+": "+m.Text)
	}
	return out
}

func TestCheckIsBoundedByItsDeadline(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	srv := site(t, map[string]http.HandlerFunc{
		"/no-response": hang,
		"/slow-image":  html(`<!doctype html><title>Gallery</title><body><h1>Photos</h1><img src="/img.png"></body>`),
		"/img.png":     hang,
		"/busy":        html(`<!doctype html><title>Busy</title><body><p>spinning</p><script>setTimeout(() => { for (;;) {} }, 0)</script></body>`),
	})
	const timeout = 4 * time.Second
	b := startBrowser(t, Config{CheckTimeout: timeout, MaxWait: time.Second})

	tests := []struct {
		name  string
		path  string
		check func(t *testing.T, r *Result)
	}{
		{name: "server never answers", path: "/no-response", check: func(t *testing.T, r *Result) {
			require.Zero(t, r.Status)
			require.Nil(t, r.Screenshot)
			require.Contains(t, r.Report(), "HTTP status: no response")
			require.Contains(t, r.Notes[0], "No response from the server within")
		}},
		{name: "an asset never loads", path: "/slow-image", check: func(t *testing.T, r *Result) {
			require.Equal(t, 200, r.Status)
			require.False(t, r.Loaded)
			require.Equal(t, "Photos", r.Text)
			require.NotEmpty(t, r.Screenshot, "what rendered is still captured")
			require.Contains(t, r.Report(), "had not finished loading")
		}},
		{name: "a script never yields", path: "/busy", check: func(t *testing.T, r *Result) {
			require.Equal(t, 200, r.Status)
			require.Contains(t, r.Report(), "did not answer")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r, err := b.Check(t.Context(), Request{URL: srv.URL + tt.path, Wait: time.Minute})
			took := time.Since(start)
			require.NoError(t, err)
			require.True(t, r.TimedOut)
			require.Less(t, took, timeout+time.Second, "the check must end at its deadline")
			tt.check(t, r)
		})
	}

	// The pages above were closed, hung renderer included: a new check gets a page at once.
	page := site(t, map[string]http.HandlerFunc{"/": html(`<title>ok</title>`)})
	r, err := b.Check(t.Context(), Request{URL: page.URL})
	require.NoError(t, err)
	require.Equal(t, "ok", r.Title)
}

func TestRendererCrashIsReported(t *testing.T) {
	srv := site(t, map[string]http.HandlerFunc{
		"/": html(`<!doctype html><title>Leak</title><body><script>
			const hoard = []; for (;;) hoard.push(new Array(1 << 20).fill(Math.random()))</script></body>`),
		"/ok": html(`<title>fine</title>`),
	})
	b := startBrowser(t, Config{JSHeapMB: 64, CheckTimeout: 20 * time.Second})
	r, err := b.Check(t.Context(), Request{URL: srv.URL})
	require.NoError(t, err)
	require.True(t, r.Crashed, "%s", r.Report())
	require.Contains(t, r.Report(), "The page crashed")
	require.Nil(t, r.Screenshot)

	// Only the page died: the browser goes on.
	r, err = b.Check(t.Context(), Request{URL: srv.URL + "/ok"})
	require.NoError(t, err)
	require.Equal(t, "fine", r.Title)
	require.Zero(t, b.Restarts())
}

func TestCheckFollowsTheCallersContext(t *testing.T) {
	srv := site(t, map[string]http.HandlerFunc{
		"/":        html(`<!doctype html><title>Shop</title><body><p>catalogue</p><img src="/img.png"></body>`),
		"/img.png": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	})
	b := startBrowser(t, Config{})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(500*time.Millisecond, cancel)
		start := time.Now()
		_, err := b.Check(ctx, Request{URL: srv.URL})
		require.ErrorIs(t, err, context.Canceled)
		require.Less(t, time.Since(start), 2*time.Second)
	})
	t.Run("a shorter deadline than the check's", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		start := time.Now()
		r, err := b.Check(ctx, Request{URL: srv.URL})
		require.NoError(t, err, "what was seen by the caller's deadline is still a result")
		require.Less(t, time.Since(start), 3*time.Second)
		require.True(t, r.TimedOut)
		require.Equal(t, "catalogue", r.Text)
	})
}

func TestConcurrentChecksShareOneBrowserWithinThePageLimit(t *testing.T) {
	var inflight, peak atomic.Int32
	srv := site(t, map[string]http.HandlerFunc{
		"/": func(w http.ResponseWriter, r *http.Request) {
			html(fmt.Sprintf(`<!doctype html><title>page %s</title><body><img src="/slow.png?n=%[1]s">page %[1]s</body>`, r.URL.Query().Get("n")))(w, r)
		},
		"/slow.png": func(w http.ResponseWriter, r *http.Request) {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(400 * time.Millisecond)
			w.WriteHeader(http.StatusNoContent)
		},
	})
	b := startBrowser(t, Config{MaxPages: 2})
	pid := b.PID()

	const checks = 5
	var wg sync.WaitGroup
	results := make([]*Result, checks)
	errs := make([]error, checks)
	for i := range checks {
		wg.Go(func() {
			results[i], errs[i] = b.Check(t.Context(), Request{URL: fmt.Sprintf("%s/?n=%d", srv.URL, i)})
		})
	}
	wg.Wait()
	for i := range checks {
		require.NoError(t, errs[i])
		require.Equal(t, fmt.Sprintf("page %d", i), results[i].Title)
		require.Equal(t, fmt.Sprintf("page %d", i), results[i].Text)
		require.NotEmpty(t, results[i].Screenshot)
	}
	require.LessOrEqual(t, peak.Load(), int32(2), "no more pages than MaxPages load at once")
	require.Equal(t, pid, b.PID(), "all checks share one browser")
}

func TestKilledBrowserIsRestarted(t *testing.T) {
	reached := make(chan struct{}, 1)
	srv := site(t, map[string]http.HandlerFunc{
		"/": html(`<title>alive</title><p>hello</p>`),
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			reached <- struct{}{}
			<-r.Context().Done()
		},
	})
	b := startBrowser(t, Config{})
	first := b.PID()
	dir := userDataDir(t, first)

	// A check in flight when chromium dies fails at once with ErrBrowserExited.
	errc := make(chan error, 1)
	go func() {
		_, err := b.Check(t.Context(), Request{URL: srv.URL + "/slow"})
		errc <- err
	}()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the page never requested /slow")
	}
	tree := processTree(first)
	require.Greater(t, len(tree), 1, "chromium runs helpers (zygote, renderer…)")
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrBrowserExited)
	case <-time.After(10 * time.Second):
		t.Fatal("the check in flight did not end when chromium died")
	}

	// The next check starts a new browser; the dead one left nothing behind.
	r, err := b.Check(t.Context(), Request{URL: srv.URL})
	require.NoError(t, err)
	require.Equal(t, "alive", r.Title)
	second := b.PID()
	require.NotZero(t, second)
	require.NotEqual(t, first, second)
	require.Equal(t, 1, b.Restarts())
	requireGone(t, tree, dir)
}

func TestNonLoopbackURLsAreRefused(t *testing.T) {
	b := startBrowser(t, Config{})
	for _, u := range []string{
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://example.com/",
		"http://[fd00::1]:8080/",
		"http://127.0.0.1.nip.io/",
		"http://localhost.example.com/",
		"http://2130706433/",
		"file:///etc/passwd",
		"javascript:alert(1)",
		"chrome://version",
		"http://user:pw@localhost/",
		"not a url",
	} {
		t.Run(u, func(t *testing.T) {
			_, err := b.Check(t.Context(), Request{URL: u})
			require.ErrorIs(t, err, ErrURLRefused)
		})
	}
}

func TestHostPolicy(t *testing.T) {
	tests := []struct {
		allow []string
		url   string
		ok    bool
	}{
		{nil, "http://127.0.0.1:3000/", true},
		{nil, "http://127.8.9.10/", true},
		{nil, "http://[::1]:3000/", true},
		{nil, "http://localhost:3000/", true},
		{nil, "http://LOCALHOST./", true},
		{nil, "https://p3000-abc.preview.localhost:8000/?token=x", true},
		{nil, "http://[::ffff:127.0.0.1]/", true},
		{nil, "http://192.168.1.10/", false},
		{nil, "http://preview.example.com/", false},
		{[]string{"preview.example.com"}, "https://preview.example.com/p/1", true},
		{[]string{"preview.example.com"}, "https://x.preview.example.com/", false},
		{[]string{".preview.example.com"}, "https://p3000-a.preview.example.com/", true},
		{[]string{".preview.example.com"}, "https://evilpreview.example.com/", false},
		{[]string{"*"}, "http://10.1.2.3/", true},
		{[]string{"*"}, "ftp://10.1.2.3/", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.allow, tt.url), func(t *testing.T) {
			_, err := newHostPolicy(tt.allow).check(tt.url)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrURLRefused)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		_, err := New(Config{ExecPath: "/nonexistent/chromium"}, testLog())
		require.ErrorIs(t, err, ErrUnavailable)
		require.Contains(t, err.Error(), "/nonexistent/chromium not found")
	})
	t.Run("disabled", func(t *testing.T) {
		_, err := New(Config{Disabled: true}, testLog())
		require.ErrorIs(t, err, ErrUnavailable)
	})
	t.Run("exits at once", func(t *testing.T) {
		_, err := New(Config{ExecPath: fakeBrowser(t, "echo 'chromium: cannot open display' >&2; exit 3")}, testLog())
		require.ErrorIs(t, err, ErrUnavailable)
	})
	t.Run("never answers", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "pid")
		start := time.Now()
		_, err := New(Config{ExecPath: fakeBrowser(t, "echo $$ > "+marker+"; exec sleep 600"), StartTimeout: 2 * time.Second}, testLog())
		require.ErrorIs(t, err, ErrUnavailable)
		require.Contains(t, err.Error(), "did not start within 2s")
		require.Less(t, time.Since(start), 6*time.Second, "a browser that never answers must not hang New")
		raw, err := os.ReadFile(marker)
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return !processRuns(pid) }, 5*time.Second, 50*time.Millisecond, "the stuck browser was left running")
	})
	t.Run("invalid config", func(t *testing.T) {
		_, err := New(Config{MaxPages: 100}, testLog())
		require.ErrorIs(t, err, ErrInvalidConfig)
	})
}

// fakeBrowser writes an executable shell script standing in for chromium.
func fakeBrowser(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chromium")
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755))
	return path
}

func TestClosedBrowser(t *testing.T) {
	reached := make(chan struct{}, 1)
	srv := site(t, map[string]http.HandlerFunc{
		"/": html(`<title>x</title>`),
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			reached <- struct{}{}
			<-r.Context().Done()
		},
	})
	b := startBrowser(t, Config{})
	pid := b.PID()
	tree, dir := processTree(pid), userDataDir(t, pid)

	// A check in flight ends when the browser closes, and Close waits for its page.
	errc := make(chan error, 1)
	go func() {
		_, err := b.Check(t.Context(), Request{URL: srv.URL + "/slow"})
		errc <- err
	}()
	<-reached
	start := time.Now()
	require.NoError(t, b.Close())
	require.Less(t, time.Since(start), 10*time.Second)
	require.ErrorIs(t, <-errc, ErrClosed)

	requireGone(t, tree, dir)
	require.Zero(t, b.PID())
	_, err := b.Check(t.Context(), Request{URL: srv.URL})
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, b.Close(), "Close is idempotent")
}

func TestReportMasksThePreviewToken(t *testing.T) {
	r := &Result{
		URL: "http://p3000-s.preview.localhost:8000/?token=abc.def", FinalURL: "http://p3000-s.preview.localhost:8000/",
		Status: 500, StatusText: "Internal Server Error", Duration: 1500 * time.Millisecond,
		Exceptions:            []Exception{{Message: "ReferenceError: x is not defined", Location: "http://p3000-s.preview.localhost:8000/app.js?token=abc.def:3:7"}},
		ConsoleDropped:        0,
		FailedRequests:        []FailedRequest{{URL: "http://p3000-s.preview.localhost:8000/api?token=abc.def&x=1", Method: "POST", Status: 502}},
		FailedRequestsDropped: 4,
		Text:                  "Something went wrong",
		TextTruncated:         true,
	}
	got := r.Report()
	assert.Equal(t, `Loaded http://p3000-s.preview.localhost:8000/?token=… in 1.5s
HTTP status: 500 Internal Server Error
Final URL: http://p3000-s.preview.localhost:8000/

Uncaught exceptions (1):
- ReferenceError: x is not defined (http://p3000-s.preview.localhost:8000/app.js?token=…:3:7)

Failed requests (1, 4 more not shown):
- POST http://p3000-s.preview.localhost:8000/api?token=…&x=1 → HTTP 502

Visible text (20 chars, cut):
Something went wrong`, got)
}

func TestNormalizeText(t *testing.T) {
	tests := []struct {
		in, want string
		limit    int
		cut      bool
	}{
		{"  Hello \t  world  ", "Hello world", 100, false},
		{"Title\n\n\n  Body   text\n", "Title\nBody text", 100, false},
		{"a\u00a0\u00a0b", "a b", 100, false},
		{"abcdef", "abc", 3, true},
		{"ab   cdef", "ab", 3, true},
		{"", "", 10, false},
	}
	for _, tt := range tests {
		got, cut := normalizeText(tt.in, tt.limit)
		assert.Equal(t, tt.want, got, "%q", tt.in)
		assert.Equal(t, tt.cut, cut, "%q", tt.in)
	}
}
