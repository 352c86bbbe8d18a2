// Package preview serves the live previews of dev servers running inside
// sandboxes: HTTP and WebSocket (Vite/Next HMR) reverse-proxied through the
// sandbox-agent's TCP tunnel, so a server bound to the sandbox's localhost
// works and nothing is ever published on a host port.
//
// Access: GetPreview hands out a URL with a short-lived signed token (an
// iframe cannot send a Bearer header). The first request with a valid token
// gets a longer-lived cookie scoped to that preview origin and, for page
// loads, a redirect that drops the token from the address bar.
package preview

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
)

// CookieName is the preview session cookie.
const CookieName = "mgx_preview"

// cookieTTL is how long a preview stays open in a browser tab after its
// token was exchanged.
const cookieTTL = 12 * time.Hour

// Sandboxes is what the preview server needs from the domain.
type Sandboxes interface {
	DialPort(ctx context.Context, sessionID string, port int) (net.Conn, error)
	Touch(ctx context.Context, sessionID string)
}

// Server is the preview HTTP server.
type Server struct {
	sb        Sandboxes
	secret    []byte
	ttl       time.Duration
	public    *url.URL
	keepalive time.Duration
	log       *slog.Logger
	proxy     *httputil.ReverseProxy
	now       func() time.Time
}

// Options configure a Server.
type Options struct {
	// Secret signs tokens and cookies; replicas must share it.
	Secret []byte
	// TokenTTL is the lifetime of a URL's token.
	TokenTTL time.Duration
	// PublicURL is the public edge the gateway serves (MGX_PUBLIC_URL).
	PublicURL string
	// KeepAlive is how often an open WebSocket records activity.
	KeepAlive time.Duration
	Logger    *slog.Logger
}

// New returns a preview server.
func New(sb Sandboxes, opts Options) (*Server, error) {
	pub, err := url.Parse(opts.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("preview: invalid public URL %q", opts.PublicURL)
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("preview: empty secret")
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	s := &Server{sb: sb, secret: opts.Secret, ttl: opts.TokenTTL, public: pub, keepalive: opts.KeepAlive, log: opts.Logger, now: time.Now}
	tr := &http.Transport{
		// The "host" of an outgoing request names the target as
		// <session>.<port>.sandbox, so the transport keeps a separate
		// connection pool per sandbox port and this dialer can find it.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			sid, port, ok := parseTargetHost(host)
			if !ok {
				return nil, fmt.Errorf("preview: bad target %q", addr)
			}
			return sb.DialPort(ctx, sid, port)
		},
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		DisableCompression:    true,
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite:       s.rewrite,
		Transport:     tr,
		FlushInterval: -1, // stream SSE and chunked dev-server output as it comes
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t, _ := r.Context().Value(targetKey{}).(target)
			msg := fmt.Sprintf("nothing is answering on port %d in this sandbox yet", t.port)
			if errors.Is(err, sandbox.ErrNotFound) {
				msg = "this sandbox is not running; reopen the preview from the app"
			}
			http.Error(w, msg, http.StatusBadGateway)
		},
	}
	return s, nil
}

type targetKey struct{}

type target struct {
	session string
	port    int
	prefix  string // path prefix to strip (path-based URLs)
	// ours: the request's token query parameter is our preview token, dropped before the dev
	// server. Any other token parameter is the app's own (Vite's HMR WebSocket authenticates with
	// ?token=) and passes untouched.
	ours bool
}

func targetHost(sid string, port int) string { return sid + "." + strconv.Itoa(port) + ".sandbox" }

func parseTargetHost(h string) (string, int, bool) {
	h = strings.TrimSuffix(h, ".sandbox")
	i := strings.LastIndexByte(h, '.')
	if i < 0 {
		return "", 0, false
	}
	port, err := strconv.Atoi(h[i+1:])
	if err != nil {
		return "", 0, false
	}
	return h[:i], port, true
}

var (
	hostLabel  = regexp.MustCompile(`^p([0-9]{1,5})-([0-9a-fA-F-]{36})$`)
	pathPrefix = regexp.MustCompile(`^/preview/([0-9a-fA-F-]{36})/([0-9]{1,5})(/|$)`)
)

// parseTarget finds the preview target in the Host (p<port>-<session>.preview.<host>)
// or, failing that, the path (/preview/<session>/<port>/).
func parseTarget(r *http.Request) (target, bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if label, rest, ok := strings.Cut(host, "."); ok && strings.HasPrefix(rest, "preview.") {
		if m := hostLabel.FindStringSubmatch(label); m != nil {
			port, _ := strconv.Atoi(m[1])
			if port >= 1 && port <= 65535 {
				return target{session: strings.ToLower(m[2]), port: port}, true
			}
		}
	}
	if m := pathPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		port, _ := strconv.Atoi(m[2])
		if port >= 1 && port <= 65535 {
			return target{session: strings.ToLower(m[1]), port: port, prefix: "/preview/" + m[1] + "/" + m[2]}, true
		}
	}
	return target{}, false
}

// URL returns the preview URL of a port, with a fresh token. Host-based
// (p<port>-<session>.preview.<public host>) so dev servers' absolute asset
// paths and HMR work; path-based when the public host is an IP address,
// which cannot have subdomains.
func (s *Server) URL(sessionID string, port int) string {
	tok := s.sign("t", sessionID, port, s.now().Add(s.ttl))
	host := s.public.Hostname()
	if net.ParseIP(host) != nil {
		return fmt.Sprintf("%s://%s/preview/%s/%d/?token=%s", s.public.Scheme, s.public.Host, sessionID, port, tok)
	}
	h := fmt.Sprintf("p%d-%s.preview.%s", port, sessionID, host)
	if p := s.public.Port(); p != "" {
		h += ":" + p
	}
	return fmt.Sprintf("%s://%s/?token=%s", s.public.Scheme, h, tok)
}

func (s *Server) sign(kind, sid string, port int, exp time.Time) string {
	payload := kind + "|" + sid + "|" + strconv.Itoa(port) + "|" + strconv.FormatInt(exp.Unix(), 10)
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte(payload))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(mac.Sum(nil))
}

func (s *Server) verify(tok, kind string, t target) bool {
	p64, m64, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	sum, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha256.New, s.secret)
	mac.Write(payload)
	if !hmac.Equal(sum, mac.Sum(nil)) {
		return false
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 4 || f[0] != kind || !strings.EqualFold(f[1], t.session) || f[2] != strconv.Itoa(t.port) {
		return false
	}
	exp, err := strconv.ParseInt(f[3], 10, 64)
	return err == nil && s.now().Unix() < exp
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t, ok := parseTarget(r)
	if !ok {
		http.Error(w, "not a preview URL", http.StatusNotFound)
		return
	}
	cookiePath := "/"
	if t.prefix != "" {
		cookiePath = t.prefix + "/"
	}
	authorised := false
	if c, err := r.Cookie(CookieName); err == nil && s.verify(c.Value, "c", t) {
		authorised = true
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		if !s.verify(tok, "t", t) {
			if !authorised {
				http.Error(w, "this preview link has expired; reopen the preview from the app", http.StatusUnauthorized)
				return
			}
		} else {
			authorised, t.ours = true, true
			http.SetCookie(w, &http.Cookie{
				Name: CookieName, Value: s.sign("c", t.session, t.port, s.now().Add(cookieTTL)),
				Path: cookiePath, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(cookieTTL.Seconds()),
			})
			if r.Method == http.MethodGet && !isWebSocket(r) {
				// Drop the token from the address bar (and from the
				// dev server's view, its logs, Referer headers).
				u := *r.URL
				q := u.Query()
				q.Del("token")
				u.RawQuery = q.Encode()
				u.Scheme, u.Host = "", ""
				http.Redirect(w, r, u.String(), http.StatusFound)
				return
			}
		}
	}
	if !authorised {
		http.Error(w, "open this preview from the app (missing or expired preview token)", http.StatusUnauthorized)
		return
	}

	s.sb.Touch(r.Context(), t.session)
	if isWebSocket(r) {
		// An open WebSocket (HMR) is activity for as long as it stays
		// open, though no request passes: keep the sandbox alive.
		ctx, stop := context.WithCancel(r.Context())
		defer stop()
		go func() {
			tick := time.NewTicker(s.keepalive)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					s.sb.Touch(context.WithoutCancel(ctx), t.session)
				}
			}
		}()
	}
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	t, _ := pr.In.Context().Value(targetKey{}).(target)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = targetHost(t.session, t.port)
	// Keep the browser's Host: dev servers build absolute URLs (and HMR
	// endpoints) from it.
	pr.Out.Host = pr.In.Host
	if t.prefix != "" {
		pr.Out.URL.Path = strings.TrimPrefix(pr.Out.URL.Path, t.prefix)
		pr.Out.URL.RawPath = ""
		if pr.Out.URL.Path == "" {
			pr.Out.URL.Path = "/"
		}
	}
	if t.ours {
		q := pr.Out.URL.Query()
		q.Del("token")
		pr.Out.URL.RawQuery = q.Encode()
	}
	// Our cookie is ours; the dev server never sees it.
	if cs := pr.In.Cookies(); len(cs) > 0 {
		pr.Out.Header.Del("Cookie")
		for _, c := range cs {
			if c.Name != CookieName {
				pr.Out.AddCookie(c)
			}
		}
	}
	pr.SetXForwarded()
}
