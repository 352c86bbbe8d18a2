// Package edge is the gateway's HTTP surface: routing between the REST API,
// the event stream bridge, preview traffic and the OpenAPI document, and the
// middleware every API request passes: request id, access log, CORS, body
// limit, authentication and rate limiting.
package edge

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/cors"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	"github.com/mgx-ai/mgx/gateway/internal/ratelimit"
	"github.com/mgx-ai/mgx/gateway/internal/stream"
	"github.com/mgx-ai/mgx/pkg/requestid"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// Authenticator resolves a bearer credential to its principal.
type Authenticator interface {
	Authenticate(ctx context.Context, credential string) (auth.Principal, error)
}

// Options assembles the edge.
type Options struct {
	Logger  *slog.Logger
	Errors  httperr.Writer
	Auth    Authenticator
	Limiter *ratelimit.Limiter

	// API serves the REST table (the grpc-gateway mux).
	API http.Handler
	// Events serves WS /api/ws/sessions/{id}; EventsSSE serves
	// GET /api/sessions/{id}/events.
	Events    http.Handler
	EventsSSE http.Handler
	// Preview serves preview traffic, recognised by its host alone
	// (PreviewHostSuffix, ".preview.localhost"): sandbox HTML is never served
	// on the API's own origin, so no path of it is a preview.
	Preview           http.Handler
	PreviewHostSuffix string
	OpenAPI           []byte
	// Console serves the web console: every path outside /api, /healthz and preview traffic. Nil:
	// those paths are the API's 404s.
	Console http.Handler

	// ServerName is the host telemetry names the server by (MGX_PUBLIC_URL's host and port), never a
	// request's Host: a client may send any (one series and span attribute per invented host), and a
	// preview's holds its capability, a credential that has no place in metrics or traces.
	ServerName string

	CORSOrigins  []string
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request's body, from the end of its headers (whose own deadline
	// is the server's ReadHeaderTimeout); 0 means none.
	BodyTimeout time.Duration
	// TrustedProxies are peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Conns is told which connections authenticated (the anonymous-connection cap); nil: none.
	Conns *Conns
}

// publicPaths need no credential.
var publicPaths = map[string]bool{
	"/api/auth/register": true,
	"/api/auth/login":    true,
	"/api/auth/refresh":  true,
	"/api/openapi.json":  true,
	"/healthz":           true,
}

// New returns the gateway's root handler.
func New(o Options) http.Handler {
	e := &edge{o: o}
	api := http.NewServeMux()
	api.Handle("GET /api/openapi.json", e.guard(http.HandlerFunc(e.openAPI), headerCredential))
	// The event streams are the only routes a browser cannot send a header to (a WebSocket, an
	// EventSource), so the only ones that take the access token in the URL.
	if o.Events != nil {
		api.Handle("GET /api/ws/sessions/{session_id}", e.guard(o.Events, queryCredential))
	}
	if o.EventsSSE != nil {
		api.Handle("GET /api/sessions/{session_id}/events", e.guard(o.EventsSSE, queryCredential))
	}
	api.Handle("/", e.guard(o.API, headerCredential))

	c := cors.New(cors.Options{
		AllowedOrigins:   o.CORSOrigins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "X-Api-Key", "X-Request-Id", "Last-Event-Id"},
		ExposedHeaders:   []string{"Retry-After", "X-Request-Id"},
		AllowCredentials: true,
		MaxAge:           600,
	})
	e.api = c.Handler(api)
	// Outermost, so the access log and every upstream call run inside the
	// request's span (trace ids in log lines, one trace per request).
	return otelhttp.NewHandler(e, "gateway",
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }),
		// Metric labels come from a closed set: the method (otelhttp folds unknown ones into
		// _OTHER), the status, the scheme, the protocol version and this fixed server name,
		// never the Host header.
		otelhttp.WithServerName(cmp.Or(o.ServerName, "gateway")),
		// Method only: paths carry ids, and span names must stay few. The
		// child gRPC spans name the RPC.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }),
	)
}

type edge struct {
	o   Options
	api http.Handler
}

func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get(requestid.MetadataKey)
	if !requestid.Valid(id) {
		id = requestid.New()
	}
	w.Header().Set("X-Request-Id", id)
	ctx := requestid.NewContext(r.Context(), id)
	ctx = auth.ContextWithClientIP(ctx, e.clientIP(r))
	r = r.WithContext(ctx)
	r = e.bodyDeadline(w, r)

	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(p)
			}
			e.o.Logger.ErrorContext(ctx, "panic in HTTP handler", "panic", p, "path", r.URL.Path)
			if !rec.wrote {
				e.o.Errors.Reason(rec, r, errorsv1.ErrorReason_INTERNAL, "")
			}
		}
		// The query is left out: it may carry ?token=.
		e.o.Logger.LogAttrs(ctx, slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)),
			slog.String("request_id", id))
	}()

	if e.isPreview(r) {
		e.o.Preview.ServeHTTP(rec, r)
		return
	}
	if e.o.Console != nil && r.URL.Path != "/healthz" && r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") {
		e.o.Console.ServeHTTP(rec, r)
		return
	}
	e.api.ServeHTTP(rec, r)
}

func (e *edge) isPreview(r *http.Request) bool {
	if e.o.Preview == nil {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return e.o.PreviewHostSuffix != "" && strings.HasSuffix(strings.ToLower(host), e.o.PreviewHostSuffix)
}

// Where a route takes its credential from.
const (
	headerCredential = false // the Authorization or X-Api-Key header only
	queryCredential  = true  // also ?token= (browser streams)
)

// guard applies the body limit, authentication and the rate limit. A credential comes from a
// header; ?token= is one only where queryToken says so, and anywhere else it is refused: a token in
// a URL ends up in histories, logs and Referer headers, and no route that changes data needs it.
func (e *edge) guard(next http.Handler, queryToken bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.o.MaxBodyBytes > 0 {
			if r.ContentLength > e.o.MaxBodyBytes {
				w.Header().Set("Connection", "close")
				e.o.Errors.Reason(w, r, errorsv1.ErrorReason_REQUEST_TOO_LARGE, "")
				return
			}
			r = httperr.LimitBody(w, r, e.o.MaxBodyBytes)
		}

		// Path parameters and query values become proto strings, which must
		// be UTF-8: gRPC would refuse to marshal them, as an Internal error.
		if !utf8.ValidString(r.URL.Path) || !validQuery(r.URL.RawQuery) {
			e.o.Errors.Reason(w, r, errorsv1.ErrorReason_INVALID_ARGUMENT, "path and query must be valid UTF-8")
			return
		}
		var urlToken string
		if q := r.URL.Query(); q.Has("token") {
			if !queryToken {
				e.o.Errors.Reason(w, r, errorsv1.ErrorReason_UNAUTHENTICATED,
					"the token query parameter is accepted only by the event streams; send the credential in the Authorization header")
				return
			}
			// The token does its job here; it must not reach anything upstream.
			urlToken = q.Get("token")
			q.Del("token")
			r.URL.RawQuery = q.Encode()
		}
		subject := "ip:" + auth.ClientIPFromContext(r.Context())
		if !publicPaths[r.URL.Path] {
			p, err := e.o.Auth.Authenticate(r.Context(), credential(r, urlToken))
			if err != nil {
				e.o.Errors.Write(w, r, auth.ToStatus(r.Context(), e.o.Logger, err))
				return
			}
			r = r.WithContext(auth.NewContext(r.Context(), p))
			subject = "user:" + p.UserID
			if e.o.Conns != nil {
				e.o.Conns.Authenticated(r.Context())
			}
		}

		if e.o.Limiter != nil {
			if d := e.o.Limiter.Allow(subject); !d.Allowed {
				secs := strconv.Itoa(int((d.RetryAfter + time.Second - 1) / time.Second))
				e.o.Errors.Write(w, r, rpcerr.New(errorsv1.ErrorReason_RATE_LIMITED, "rate limit exceeded, retry in "+secs+"s",
					map[string]string{rpcerr.MetaRetryAfter: secs}))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func validQuery(raw string) bool {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return false
	}
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// credential returns the caller's bearer credential: the Authorization
// header (access token or API key), X-Api-Key, the token a WebSocket
// handshake offers as a subprotocol (stream.BearerProtocol), or the `token`
// query parameter that browsers use where they cannot set headers
// (WebSocket, EventSource) and that guard passes only for those routes.
func credential(r *http.Request, queryToken string) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	if tok := stream.SubprotocolToken(r); tok != "" {
		return tok
	}
	return queryToken
}

// clientIP is the address login throttling and anonymous rate limits key
// on. Behind trusted proxies it is the right-most X-Forwarded-For hop not
// added by one of them: everything left of it is what the client claims,
// and a client can claim anything.
func (e *edge) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if !e.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
		if !e.trusted(addr) {
			break
		}
	}
	return addr.String()
}

func (e *edge) trusted(a netip.Addr) bool {
	for _, p := range e.o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (e *edge) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(e.o.OpenAPI)
}

// statusRecorder remembers the status for the access log. It forwards
// Flush and Hijack, which SSE and WebSocket need.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush, Hijack and deadlines.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	s.status = http.StatusSwitchingProtocols
	return h.Hijack()
}

// bodyDeadline gives the request's body BodyTimeout to arrive. The deadline is the connection's read
// deadline, set per request and cleared the moment the body is read to its end: the server's own
// ReadTimeout would instead stay on the connection and cut every WebSocket, SSE stream and long exec,
// all of which read nothing (or a small body) and then run for minutes. A request without a body
// gets no deadline at all (its headers had ReadHeaderTimeout). A body that misses the deadline fails
// its read, answered 408 by the error funnel, and the connection is closed.
func (e *edge) bodyDeadline(w http.ResponseWriter, r *http.Request) *http.Request {
	if e.o.BodyTimeout <= 0 || r.Body == nil || r.Body == http.NoBody {
		return r
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(e.o.BodyTimeout)); err != nil {
		return r
	}
	r, expired := httperr.MarkBodyTimeout(r)
	r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, expired: expired}
	return r
}

type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	expired *bool
	done    bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, io.EOF) && !b.done:
		// Whole: from here the connection is read only to notice the client going away, which
		// must never time out.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		*b.expired = true
	}
	return n, err
}
