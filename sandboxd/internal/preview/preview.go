// Package preview serves the live previews of dev servers running inside sandboxes: HTTP and
// WebSocket (Vite/Next HMR) reverse-proxied through the sandbox-agent's TCP tunnel, so a server
// bound to the sandbox's localhost works and nothing is ever published on a host port.
//
// Access is a capability in the host name (see docs/previews.md for the threat model):
//
//	p<port>-<capability>.preview.<public host>
//
// The capability is the session id, an expiry and a MAC over both, the port and the incarnation of
// the sandbox running the session, under a key only sandboxd holds. Every request the page makes —
// the document, its assets, its HMR WebSocket — carries it in its Host, so a preview works embedded
// in a page of any origin: there is no cookie for a browser to block as third-party, no token to
// trade, no redirect. A capability dies when it expires, when the sandbox it was made for is
// destroyed (session deleted, sandbox destroyed or reaped: the next sandbox is another
// incarnation), and when its session's previews are rotated (Rotate).
package preview

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mgx-ai/mgx/pkg/previewhost"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Sandboxes is what the preview server needs from the domain.
type Sandboxes interface {
	DialPort(ctx context.Context, sessionID string, port int) (net.Conn, error)
	Touch(ctx context.Context, sessionID string)
}

// Grants is the state capabilities are checked against, in sandboxd's Redis (*store.Store).
type Grants interface {
	PreviewGrant(ctx context.Context, sessionID string) (store.PreviewGrant, error)
	RevokePreviews(ctx context.Context, sessionID string, through time.Time, keep time.Duration) (time.Time, error)
}

// DefaultTTL is how long a preview URL works when Options.TTL is unset.
const DefaultTTL = 12 * time.Hour

// MinTTL is the shortest lifetime a preview URL may be given: URLs are handed out again for half
// of it, and a capability's expiry has a resolution of one second.
const MinTTL = 2 * time.Second

// Options configure a Server.
type Options struct {
	// Secret is the MAC key of capabilities; replicas must share it.
	Secret []byte
	// TTL is how long a preview URL works (DefaultTTL when zero). The same URL is handed out for
	// half of it, so a URL someone just got works for at least TTL/2.
	TTL time.Duration
	// PublicURL is the public edge the gateway serves (MGX_PUBLIC_URL); previews live under
	// preview.<its host>.
	PublicURL string
	// KeepAlive is how often an open WebSocket records activity and has its capability checked
	// again (a rotation closes it within this period).
	KeepAlive time.Duration
	Logger    *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server is the preview HTTP server and the maker of preview URLs.
type Server struct {
	sb        Sandboxes
	grants    Grants
	secret    []byte
	ttl       time.Duration
	base      previewhost.Base
	off       error // why previews are off (ErrIPHost), or nil
	domains   []string
	keepalive time.Duration
	log       *slog.Logger
	proxy     *httputil.ReverseProxy
	now       func() time.Time
}

// New returns a preview server. A public URL whose host is an IP address other than loopback has
// no host names to put previews under: the server then hands out no URLs, says why in Off, and
// still serves in-host clients under previewhost.Loopback.
func New(sb Sandboxes, grants Grants, opts Options) (*Server, error) {
	if len(opts.Secret) < 16 {
		return nil, errors.New("preview: the capability key must be at least 16 bytes")
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.TTL < MinTTL {
		return nil, fmt.Errorf("preview: TTL %s is shorter than %s", opts.TTL, MinTTL)
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{sb: sb, grants: grants, secret: opts.Secret, ttl: opts.TTL, keepalive: opts.KeepAlive, log: opts.Logger, now: opts.Now,
		domains: []string{previewhost.Loopback}}
	base, err := previewhost.FromPublicURL(opts.PublicURL)
	switch {
	case errors.Is(err, previewhost.ErrIPHost):
		s.off = err
	case err != nil:
		return nil, fmt.Errorf("preview: %w", err)
	default:
		s.base = base
		s.domains = append(s.domains, base.Domain)
	}
	tr := &http.Transport{
		// The "host" of an outgoing request names the target as <session>.<port>.sandbox, so the
		// transport keeps a separate connection pool per sandbox port and this dialer can find it.
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
		Rewrite:        s.rewrite,
		Transport:      tr,
		ModifyResponse: guardResponse,
		FlushInterval:  -1, // stream SSE and chunked dev-server output as it comes
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t, _ := r.Context().Value(targetKey{}).(target)
			msg := fmt.Sprintf("Nothing is answering on port %d in this sandbox yet.", t.port)
			if errors.Is(err, sandbox.ErrNotFound) {
				msg = "This sandbox is not running; reopen the preview from the app."
			}
			plain(w, http.StatusBadGateway, msg)
		},
	}
	return s, nil
}

// Off says why this server hands out no preview URLs (nil when it does).
func (s *Server) Off() error { return s.off }

// TTL is how long a preview URL works.
func (s *Server) TTL() time.Duration { return s.ttl }

// ---- capabilities

// A capability is sessionLen bytes of session id, expLen of expiry (unix seconds, big endian) and
// macLen of MAC, in lower-case base32 without padding: 52 characters, within a DNS label.
const (
	sessionLen = 16
	expLen     = 4
	macLen     = 12 // 96 bits: forging one is 2^-96 per try, and every try is a request
	capLen     = sessionLen + expLen + macLen
)

// capEncoding is base32 in the lower case host names are compared in.
var capEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// macDomain separates these MACs from anything else the key might ever sign.
const macDomain = "mgx-preview-capability/1\x00"

func (s *Server) mac(session uuid.UUID, port int, exp uint32, incarnation string) []byte {
	m := hmac.New(sha256.New, s.secret)
	var fixed [2 + expLen]byte
	binary.BigEndian.PutUint16(fixed[:2], uint16(port))
	binary.BigEndian.PutUint32(fixed[2:], exp)
	m.Write([]byte(macDomain))
	m.Write(session[:])
	m.Write(fixed[:])
	m.Write([]byte(incarnation))
	return m.Sum(nil)[:macLen]
}

func (s *Server) capability(session uuid.UUID, port int, exp uint32, incarnation string) string {
	raw := make([]byte, 0, capLen)
	raw = append(raw, session[:]...)
	raw = binary.BigEndian.AppendUint32(raw, exp)
	raw = append(raw, s.mac(session, port, exp, incarnation)...)
	return capEncoding.EncodeToString(raw)
}

// URL returns the preview URL of port in the sandbox running session now, or "" when previews are
// off or no sandbox runs. Within one half of the TTL every call gives the same URL, so a page
// listing previews again does not reload a frame; a rotation or a new sandbox gives a new one.
func (s *Server) URL(ctx context.Context, sessionID string, port int) (string, error) {
	if s.off != nil || port < 1 || port > 65535 {
		return "", nil //nolint:nilerr // previews off (s.off says why, at start): no URL, not a failed call
	}
	sid, err := uuid.Parse(sessionID)
	if err != nil {
		return "", fmt.Errorf("preview: session id %q: %w", sessionID, err)
	}
	g, err := s.grants.PreviewGrant(ctx, sessionID)
	if err != nil || g.Incarnation == "" {
		return "", err
	}
	half := s.ttl / 2
	exp := s.now().Truncate(half).Add(s.ttl).Unix()
	if r := g.RevokedThrough.Unix(); !g.RevokedThrough.IsZero() && exp <= r {
		exp = r + 1
	}
	return s.base.URL(previewhost.Label(port, s.capability(sid, port, uint32(exp), g.Incarnation))), nil
}

// Rotate revokes every preview URL of a session handed out so far; URLs handed out afterwards are
// new ones. Pages open on the old ones stop working at their next request, and their WebSockets are
// closed within the keep-alive period.
func (s *Server) Rotate(ctx context.Context, sessionID string) error {
	// Every capability made so far expires by the end of the current half-TTL window plus a TTL.
	through := s.now().Truncate(s.ttl / 2).Add(s.ttl)
	_, err := s.grants.RevokePreviews(ctx, sessionID, through, time.Minute)
	return err
}

// Why a request is refused. errInvalid is one answer for a forged, revoked or outdated capability
// and a sandbox that is not running: telling them apart would tell a prober which sessions run.
var (
	errNotPreview = errors.New("not a preview host")
	errExpired    = errors.New("preview link expired")
	errInvalid    = errors.New("preview link not valid")
)

type targetKey struct{}

type target struct {
	session string
	port    int
}

// authorise checks the capability in a request's Host and returns what it opens.
func (s *Server) authorise(ctx context.Context, host string) (target, error) {
	port, capText, _, ok := previewhost.Parse(host, s.domains...)
	if !ok {
		return target{}, errNotPreview
	}
	raw, err := capEncoding.DecodeString(capText)
	// The last character carries one bit and four unused ones, which the decoder ignores: only the
	// canonical spelling names a preview, so one capability is one origin.
	if err != nil || len(raw) != capLen || capEncoding.EncodeToString(raw) != capText {
		return target{}, errNotPreview
	}
	sid, _ := uuid.FromBytes(raw[:sessionLen])
	exp := binary.BigEndian.Uint32(raw[sessionLen : sessionLen+expLen])
	if s.now().Unix() >= int64(exp) {
		return target{}, errExpired
	}
	g, err := s.grants.PreviewGrant(ctx, sid.String())
	if err != nil {
		return target{}, err
	}
	if g.Incarnation == "" || (!g.RevokedThrough.IsZero() && int64(exp) <= g.RevokedThrough.Unix()) {
		return target{}, errInvalid
	}
	if !hmac.Equal(raw[sessionLen+expLen:], s.mac(sid, port, exp, g.Incarnation)) {
		return target{}, errInvalid
	}
	return target{session: sid.String(), port: port}, nil
}

// ---- serving

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

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// plain answers with a short text the preview frame shows as it is.
func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, status)
}

// ServeHTTP implements http.Handler. A preview host answers every request by proxying it to the
// sandbox: it never redirects on its own, so no URL it serves can send a browser elsewhere.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t, err := s.authorise(r.Context(), r.Host)
	switch {
	case errors.Is(err, errNotPreview):
		plain(w, http.StatusNotFound, "Not a preview URL.")
		return
	case errors.Is(err, errExpired):
		plain(w, http.StatusUnauthorized, "This preview link has expired; reopen the preview from the app.")
		return
	case errors.Is(err, errInvalid):
		plain(w, http.StatusUnauthorized, "This preview link is no longer valid: its sandbox stopped, or the link was replaced. Reopen the preview from the app.")
		return
	case err != nil:
		s.log.WarnContext(r.Context(), "preview: check capability", "err", err)
		plain(w, http.StatusServiceUnavailable, "The preview is unavailable right now; try again.")
		return
	}

	ctx, stop := context.WithCancel(context.WithValue(r.Context(), targetKey{}, t))
	defer stop()
	s.sb.Touch(ctx, t.session)
	if isWebSocket(r) {
		// An open WebSocket (HMR) is activity for as long as it stays open, though no request
		// passes: keep the sandbox alive. It is also a standing use of the capability: once that
		// is revoked or expires, the socket is closed (the proxy ends an upgraded connection when
		// its request's context ends).
		host := r.Host
		go func() {
			tick := time.NewTicker(s.keepalive)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if _, err := s.authorise(ctx, host); errors.Is(err, errExpired) || errors.Is(err, errInvalid) {
						stop()
						return
					}
					s.sb.Touch(context.WithoutCancel(ctx), t.session)
				}
			}
		}()
	}
	s.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	t, _ := pr.In.Context().Value(targetKey{}).(target)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = targetHost(t.session, t.port)
	// Keep the browser's Host: dev servers build absolute URLs (and HMR endpoints) from it. The
	// request is passed as it came, query included (Vite's HMR socket has a ?token= of its own).
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
}

// cookieDomain matches a Domain attribute of a Set-Cookie header.
var cookieDomain = regexp.MustCompile(`(?i);\s*domain=[^;]*`)

// guardResponse limits what the sandbox's responses can do beyond their own origin.
func guardResponse(resp *http.Response) error {
	h := resp.Header
	// The capability is in the origin: cross-origin requests of the page (an image from a CDN, a
	// link clicked) must not carry it out in a Referer. Same-origin ones keep theirs (CSRF checks
	// of frameworks look at it).
	h.Set("Referrer-Policy", "same-origin")
	// Preview URLs are credentials: search engines that come across one must not list it.
	h.Set("X-Robots-Tag", "noindex, nofollow")
	// A cookie set for a parent domain (Domain=preview.<host>) would reach every other preview
	// under it — another user's among them. Cookies stay host-only.
	if cs := h.Values("Set-Cookie"); len(cs) > 0 {
		h.Del("Set-Cookie")
		for _, c := range cs {
			h.Add("Set-Cookie", cookieDomain.ReplaceAllString(c, ""))
		}
	}
	return nil
}
