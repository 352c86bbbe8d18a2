// Package console serves the web console (sources in gateway/console, built by
// `make build` into bin/console): static files with a single-page-app
// fallback, nothing else. The console talks to the same public API as any
// other client, so the gateway keeps no console-specific logic.
package console

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	"github.com/mgx-ai/mgx/pkg/previewhost"
)

// Off is the GATEWAY_CONSOLE_DIR value that turns the console off.
const Off = "off"

// indexFile is the page every client-side route is answered with.
const indexFile = "index.html"

// assetsDir holds the bundler's content-hashed files: a name there changes
// whenever its content does, so browsers may keep them forever.
const assetsDir = "assets/"

// ErrNoBuild means the configured directory holds no built console.
var ErrNoBuild = errors.New("no built console (index.html) in the directory")

// Resolve turns the GATEWAY_CONSOLE_DIR setting into the directory to serve:
// Off disables the console (""), an explicit path must hold a build, and an
// empty setting means the bin/console next to the gateway binary, which
// `make build` fills when npm is present; without it the console is simply
// absent and reason says why, for the start-up log.
func Resolve(setting string) (dir, reason string, err error) {
	switch setting {
	case Off:
		return "", "turned off by GATEWAY_CONSOLE_DIR=off", nil
	case "":
		exe, err := os.Executable()
		if err != nil {
			return "", "", fmt.Errorf("console: locate the gateway binary: %w", err)
		}
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		dir := filepath.Join(filepath.Dir(exe), "console")
		if hasBuild(dir) {
			return dir, "", nil
		}
		return "", "no build at " + dir + " (`make build` builds it when npm is installed)", nil
	default:
		dir, err := filepath.Abs(setting)
		if err != nil {
			return "", "", fmt.Errorf("console: GATEWAY_CONSOLE_DIR=%q: %w", setting, err)
		}
		if !hasBuild(dir) {
			return "", "", fmt.Errorf("console: GATEWAY_CONSOLE_DIR=%q: %w", setting, ErrNoBuild)
		}
		return dir, "", nil
	}
}

func hasBuild(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, indexFile))
	return err == nil && st.Mode().IsRegular()
}

// PreviewFrameSource is the CSP source of every preview origin of the gateway at publicURL
// (MGX_PUBLIC_URL): http://localhost:8000 gives http://*.preview.localhost:8000, the origins of
// p<port>-<capability>.preview.localhost:8000 (see pkg/previewhost). It is "" when the public host
// is an IP address other than loopback, which has no preview origins: nothing may be framed then.
func PreviewFrameSource(publicURL string) (string, error) {
	b, err := previewhost.FromPublicURL(publicURL)
	if errors.Is(err, previewhost.ErrIPHost) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("console: %w", err)
	}
	return b.FrameSource(), nil
}

// Options configures the handler.
type Options struct {
	// Dir is the built console (see Resolve).
	Dir string
	// FrameSources are the origins the console may embed in frames: the
	// preview origins (see PreviewFrameSource). Nothing else may be framed.
	FrameSources []string
	// Errors writes 404 and 405 in the API's error shape.
	Errors httperr.Writer
}

// Handler serves the console. Files are opened per request inside Dir
// (os.OpenInRoot: no path, symlink or ".." leaves it), so a `make build`
// while the gateway runs is picked up by the next page load.
type Handler struct {
	dir    string
	csp    string
	errors httperr.Writer
}

// New returns the console handler for a built directory.
func New(o Options) (*Handler, error) {
	if !hasBuild(o.Dir) {
		return nil, fmt.Errorf("console: %s: %w", o.Dir, ErrNoBuild)
	}
	for _, s := range o.FrameSources {
		// A source is spliced into a header: one with a separator or a
		// quote would rewrite the policy.
		if s == "" || strings.ContainsAny(s, " ;,'\"\r\n") {
			return nil, fmt.Errorf("console: frame source %q is not a CSP host source", s)
		}
	}
	return &Handler{dir: o.Dir, csp: policy(o.FrameSources), errors: o.Errors}, nil
}

// policy is the Content-Security-Policy of every console response. The
// bundle needs nothing inline and nothing from elsewhere: scripts, styles,
// fonts and images come from the gateway's own origin, the API and event
// streams are on it too ('self' covers ws:/wss: of the same host in CSP 3
// browsers; the explicit entries are added per request for older ones),
// and frames may only show previews. The console itself may not be framed.
func policy(frames []string) string {
	frameSrc := "'none'"
	if len(frames) > 0 {
		frameSrc = strings.Join(frames, " ")
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data: blob:",
		"font-src 'self'",
		"manifest-src 'self'",
		"frame-src " + frameSrc,
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.errors.RoutingHandler(r.Context(), nil, nil, w, r, http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", h.csp+"; connect-src 'self'"+streamOrigins(r))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")

	// The API's paths are never pages: a request for one that reached the
	// console was mis-routed, and answering it with index.html would turn
	// an API typo into a 200 HTML page.
	if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
		h.errors.RoutingHandler(r.Context(), nil, nil, w, r, http.StatusNotFound)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = indexFile
	}
	if h.serveFile(w, r, name) {
		return
	}
	if looksLikeFile(name) {
		// A missing script or image must fail as such, not load a page
		// (a stale tab asking for an old chunk sees 404 and reloads).
		h.errors.RoutingHandler(r.Context(), nil, nil, w, r, http.StatusNotFound)
		return
	}
	// A client-side route (/s/<session>): the app reads the path itself.
	if !h.serveFile(w, r, indexFile) {
		h.errors.RoutingHandler(r.Context(), nil, nil, w, r, http.StatusNotFound)
	}
}

// streamOrigins names the WebSocket origins of the host the page was
// loaded from (the event stream is on the API's own origin).
func streamOrigins(r *http.Request) string {
	host := r.Host
	if host == "" || strings.ContainsAny(host, " ;,'\"\r\n*") {
		return ""
	}
	if r.TLS != nil {
		return " wss://" + host
	}
	return " ws://" + host + " wss://" + host
}

// looksLikeFile reports whether name is meant to be a file rather than a
// client-side route: it is under assets/, or its last segment has an
// extension, or it is hidden.
func looksLikeFile(name string) bool {
	base := path.Base(name)
	return name+"/" == assetsDir || strings.HasPrefix(name, assetsDir) || strings.Contains(base, ".")
}

// serveFile answers with the regular file name under the directory; false
// when there is none (nothing written yet). Hidden files are never served.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return false
		}
	}
	f, err := os.OpenInRoot(h.dir, name)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	hdr := w.Header()
	if strings.HasPrefix(name, assetsDir) {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// index.html names the current hashed bundle, so it must be
		// revalidated on every load; the ETag keeps that a 304.
		hdr.Set("Cache-Control", "no-cache")
	}
	if ct, ok := contentTypes[path.Ext(name)]; ok {
		hdr.Set("Content-Type", ct)
	}
	hdr.Set("ETag", `"`+strconv.FormatInt(st.ModTime().UnixNano(), 36)+"-"+strconv.FormatInt(st.Size(), 36)+`"`)
	http.ServeContent(w, r, name, st.ModTime(), f)
	return true
}

// contentTypes are set explicitly: the mime package reads the host's
// tables, which differ between machines, and nosniff makes a wrong type
// fatal for scripts and styles.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".webp":        "image/webp",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
	".webmanifest": "application/manifest+json",
}

var _ http.Handler = (*Handler)(nil)
