package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/gateway/internal/console"
	"github.com/mgx-ai/mgx/gateway/internal/httperr"
)

const indexHTML = `<!doctype html><html><head><script type="module" src="/assets/index-4f2a9c.js"></script></head><body><div id="app"></div></body></html>`

// build lays out a console build the way Vite writes it, plus things that
// must never be served: a hidden file and a symlink out of the directory.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(outside, []byte("host secret"), 0o600))
	files := map[string]string{
		"index.html":              indexHTML,
		"favicon.svg":             `<svg xmlns="http://www.w3.org/2000/svg"/>`,
		"assets/index-4f2a9c.js":  `console.log("app")`,
		"assets/index-77b1e0.css": "body{margin:0}",
		".env":                    "TOKEN=x",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "leak.txt")))
	require.NoError(t, os.Symlink(filepath.Dir(outside), filepath.Join(dir, "assets", "up")))
	return dir
}

func serve(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	h, err := console.New(console.Options{Dir: dir, FrameSources: []string{"http://*.preview.localhost:8000"}, Errors: httperr.Writer{}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestServe(t *testing.T) {
	srv := serve(t, build(t))
	const immutable = "public, max-age=31536000, immutable"
	tests := []struct {
		name, method, path string
		status             int
		body               string // exact body, when set
		contentType        string
		cache              string
	}{
		{name: "root is the index", method: "GET", path: "/", status: 200, body: indexHTML, contentType: "text/html; charset=utf-8", cache: "no-cache"},
		{name: "index by name", method: "GET", path: "/index.html", status: 200, body: indexHTML, cache: "no-cache"},
		{name: "client route falls back to the index", method: "GET", path: "/s/0b9e6a1c-2f4d", status: 200, body: indexHTML, cache: "no-cache"},
		{name: "deep client route", method: "GET", path: "/s/abc/files", status: 200, body: indexHTML},
		{name: "hashed asset is immutable", method: "GET", path: "/assets/index-4f2a9c.js", status: 200, body: `console.log("app")`, contentType: "text/javascript; charset=utf-8", cache: immutable},
		{name: "stylesheet type", method: "GET", path: "/assets/index-77b1e0.css", status: 200, contentType: "text/css; charset=utf-8", cache: immutable},
		{name: "unhashed file is revalidated", method: "GET", path: "/favicon.svg", status: 200, contentType: "image/svg+xml", cache: "no-cache"},
		{name: "missing asset is 404, not the page", method: "GET", path: "/assets/index-000000.js", status: 404},
		{name: "missing file with extension is 404", method: "GET", path: "/robots.txt", status: 404},
		{name: "assets directory is no page", method: "GET", path: "/assets/", status: 404},
		{name: "hidden file is never served", method: "GET", path: "/.env", status: 404},
		{name: "symlink out of the directory is refused", method: "GET", path: "/leak.txt", status: 404},
		{name: "symlinked directory out of it is refused", method: "GET", path: "/assets/up/secret.txt", status: 404},
		{name: "dot-dot stays inside", method: "GET", path: "/../../../../etc/passwd", status: 200, body: indexHTML},
		{name: "encoded dot-dot stays inside", method: "GET", path: "/%2e%2e/%2e%2e/etc/hostname", status: 200, body: indexHTML},
		{name: "API paths are not pages", method: "GET", path: "/api/nothing-here", status: 404},
		{name: "bare /api is not a page", method: "GET", path: "/api", status: 404},
		{name: "HEAD has headers, no body", method: "HEAD", path: "/", status: 200, body: "", cache: "no-cache"},
		{name: "POST is refused", method: "POST", path: "/", status: 405},
		{name: "DELETE is refused", method: "DELETE", path: "/assets/index-4f2a9c.js", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
			require.NoError(t, err)
			// Keep the client from cleaning the path itself.
			req.URL.Opaque = tc.path
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode, "body: %s", body)
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			if tc.status >= 400 {
				var e struct {
					Detail, Code, Message, Reason string
				}
				require.NoError(t, json.Unmarshal(body, &e), "error body must be the API's shape: %s", body)
				require.NotEmpty(t, e.Detail)
				require.NotContains(t, string(body), "host secret")
				if tc.status == 405 {
					require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
				}
				return
			}
			if tc.body != "" || tc.method == "HEAD" {
				require.Equal(t, tc.body, string(body))
			}
			if tc.contentType != "" {
				require.Equal(t, tc.contentType, resp.Header.Get("Content-Type"))
			}
			if tc.cache != "" {
				require.Equal(t, tc.cache, resp.Header.Get("Cache-Control"))
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	srv := serve(t, build(t))
	resp, err := srv.Client().Get(srv.URL + "/s/some-session")
	require.NoError(t, err)
	_ = resp.Body.Close()

	csp := map[string]string{}
	for _, d := range strings.Split(resp.Header.Get("Content-Security-Policy"), ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		csp[name] = value
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	require.Equal(t, "'none'", csp["default-src"])
	require.Equal(t, "'self'", csp["script-src"], "no inline or foreign script")
	require.Equal(t, "'self'", csp["style-src"])
	require.Equal(t, "'self' ws://"+host+" wss://"+host, csp["connect-src"], "the API and its event streams, on this origin only")
	require.Equal(t, "http://*.preview.localhost:8000", csp["frame-src"], "only previews may be framed")
	require.Equal(t, "'none'", csp["frame-ancestors"])
	require.Equal(t, "'none'", csp["base-uri"])
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
}

func TestRevalidation(t *testing.T) {
	srv := serve(t, build(t))
	first, err := srv.Client().Get(srv.URL + "/")
	require.NoError(t, err)
	_ = first.Body.Close()
	etag := first.Header.Get("ETag")
	require.NotEmpty(t, etag)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/s/x", nil)
	require.NoError(t, err)
	req.Header.Set("If-None-Match", etag)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNotModified, resp.StatusCode, "a client route serves the same index, so the same ETag holds")
}

func TestRebuildIsPickedUp(t *testing.T) {
	dir := build(t)
	srv := serve(t, dir)
	const next = `<!doctype html><title>rebuilt</title>`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte(next), 0o644))
	resp, err := srv.Client().Get(srv.URL + "/")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, next, string(body))
}

func TestNew(t *testing.T) {
	_, err := console.New(console.Options{Dir: t.TempDir()})
	require.ErrorIs(t, err, console.ErrNoBuild)

	for _, bad := range []string{"", "http://a; script-src *", "'unsafe-inline'", "http://a http://b"} {
		_, err := console.New(console.Options{Dir: build(t), FrameSources: []string{bad}})
		require.Error(t, err, "frame source %q", bad)
	}
}

func TestResolve(t *testing.T) {
	built := build(t)
	empty := t.TempDir()

	dir, reason, err := console.Resolve(console.Off)
	require.NoError(t, err)
	require.Empty(t, dir)
	require.Contains(t, reason, "off")

	dir, _, err = console.Resolve(built)
	require.NoError(t, err)
	require.Equal(t, built, dir)

	_, _, err = console.Resolve(empty)
	require.ErrorIs(t, err, console.ErrNoBuild, "an explicit directory without a build is a configuration error")

	// The test binary has no console next to it: absent, with a reason, no error.
	dir, reason, err = console.Resolve("")
	require.NoError(t, err)
	require.Empty(t, dir)
	require.Contains(t, reason, "make build")
}

func TestPreviewFrameSource(t *testing.T) {
	tests := []struct {
		publicURL, want string
		wantErr         bool
	}{
		{publicURL: "http://localhost:8000", want: "http://*.preview.localhost:8000"},
		{publicURL: "https://mgx.example.com", want: "https://*.preview.mgx.example.com"},
		{publicURL: "https://mgx.example.com:8443/base", want: "https://*.preview.mgx.example.com:8443"},
		{publicURL: "http://127.0.0.1:8000", want: "http://*.preview.localhost:8000"},
		{publicURL: "http://203.0.113.7:8000", want: ""},
		{publicURL: "localhost:8000", wantErr: true},
		{publicURL: "ftp://host", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.publicURL, func(t *testing.T) {
			got, err := console.PreviewFrameSource(tc.publicURL)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
