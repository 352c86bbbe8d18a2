package tools

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// PreviewRelay lets the browser reach sandboxd's preview listener when it lives on another host (a
// Service in Kubernetes, another container in Compose): chromium loads
// p<port>-<session>.preview.localhost:<relay port>, which it resolves to loopback by itself, and the
// relay forwards every request — WebSocket upgrades included — to the listener with the Host header
// unchanged, which is what names the preview there. No DNS wildcard and no container address needed.
type PreviewRelay struct {
	srv *http.Server
	url string
}

// IsLoopbackURL reports whether a URL's host is this machine, which chromium reaches directly.
func IsLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// StartPreviewRelay serves a relay to target on a free loopback port.
func StartPreviewRelay(target string, log *slog.Logger) (*PreviewRelay, error) {
	tu, err := url.Parse(target)
	if err != nil || tu.Host == "" {
		return nil, fmt.Errorf("preview relay: SANDBOXD_PREVIEW_URL %q is not a URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("preview relay: %w", err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(tu)
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	r := &PreviewRelay{srv: &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}, url: "http://" + ln.Addr().String()}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("preview relay stopped", "err", err)
		}
	}()
	return r, nil
}

// URL is where the relay listens; it stands in for SANDBOXD_PREVIEW_URL.
func (r *PreviewRelay) URL() string { return r.url }

// Close stops the relay.
func (r *PreviewRelay) Close(ctx context.Context) error { return r.srv.Shutdown(ctx) }
