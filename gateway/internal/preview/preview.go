// Package preview forwards preview traffic (a sandbox's dev server, HTTP and
// WebSocket for hot reload) to sandboxd's preview server. The gateway does
// not authorise it: the credential is the capability in the preview's host
// name (p<port>-<capability>.preview.<host>, see pkg/previewhost), which
// sandboxd checks on every request, so no gateway credential is needed or
// forwarded.
package preview

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	"github.com/mgx-ai/mgx/pkg/previewhost"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// New returns a reverse proxy to target (SANDBOXD_PREVIEW_URL). The Host
// header is preserved: sandboxd routes host-based previews
// (p5173-<capability>.preview.localhost) by it. ReverseProxy handles WebSocket
// upgrades itself.
func New(target *url.URL, errs httperr.Writer, logger *slog.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			// The gateway's own credentials are for the API, not for code
			// running in a sandbox.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("X-Api-Key")
		},
		// Dev servers stream (HMR, server-sent events): flush at once.
		FlushInterval: -1,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The host holds the preview's capability: logged without it.
			logger.WarnContext(r.Context(), "preview upstream failed", "host", previewhost.Redact(r.Host), "path", r.URL.Path, "err", err)
			errs.Reason(w, r, errorsv1.ErrorReason_UNAVAILABLE, "preview unavailable")
		},
	}
}
