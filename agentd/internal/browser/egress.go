package browser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/agentd/internal/web"
)

// The egress guard. A checked page is code a user can have the agents write, and what it loads —
// fetches, images, scripts, iframes, redirects, navigations, WebSockets — leaves from agentd's host.
// Checking only the top-level URL would let a page read cloud metadata credentials or internal
// services and hand them back in its text and screenshot. So chromium sends everything, loopback
// included (proxy bypass list "<-loopback>"), through a forward proxy inside agentd that decides
// per connection, where it dials. Each check's browser context gets a listener of its own (a
// scope), so the proxy knows whose page asks and refusals are reported to that check only; the
// browser-wide --proxy-server is a scope of no check, for chromium's own traffic.
//
//   - loopback, localhost and *.localhost only on the port of the scope's check (sandboxd's
//     preview listener), dialled at loopback by the proxy itself;
//   - hosts the operator listed in AGENTD_BROWSER_ALLOW_HOSTS (by name or suffix) as configured;
//   - anything else only at public internet addresses, judged on the address really connected to
//     (web.PublicOnly at connect time), so DNS rebinding and odd IP spellings change nothing.
//
// The proxy listens on 127.0.0.1 and serves only loopback peers. Chromium cannot be given a proxy
// credential without prompting, so any process on agentd's host could use the proxy too; it gains
// nothing by it: the proxy reaches no more than such a process reaches directly (a preview port on
// loopback, the public internet).

// egressHeader marks a response the proxy made itself (a refusal or a failed dial), so the check
// reports a network failure rather than a page the server sent.
const egressHeader = "X-Agentd-Egress"

// proxyBypassList sends loopback through the proxy too; chromium bypasses a proxy for loopback
// unless told otherwise.
const proxyBypassList = "<-loopback>"

// blockedPrefix starts egressHeader's value for a refusal.
const blockedPrefix = "blocked: "

const (
	// dialTimeout bounds connecting to a target; a black-holed address fails the request instead of
	// holding it until the check's deadline.
	dialTimeout = 10 * time.Second
	// maxBlockRecords bounds the refusals remembered for the checks' reports.
	maxBlockRecords = 4096
)

// egress is the forward proxy of one Browser.
type egress struct {
	log       *slog.Logger
	trusted   hostPolicy // AllowHosts by name and suffix; its "*" is ignored here
	idle      time.Duration
	transport *http.Transport
	rp        *httputil.ReverseProxy
	// base serves chromium's own requests (and any context without a proxy of its own).
	base *scope

	mu      sync.Mutex
	scopes  map[*scope]struct{}
	tunnels map[net.Conn]*scope
	closed  bool
	pipes   sync.WaitGroup
}

// scope is one listener of the proxy and what it serves: the pages of one check.
type scope struct {
	e *egress
	// key is the check's top-level target (see targetKey); "" for the browser-wide scope.
	key    string
	ln     net.Listener
	srv    *http.Server
	served chan struct{}
	once   sync.Once

	mu sync.Mutex
	// blocked is why each target (host:port as the page named it) was refused.
	blocked map[string]string
}

// verdict is how the proxy may reach one target.
type verdict struct {
	// refused says why the target is not reached ("" when it is).
	refused string
	// addr is what to dial; guarded means only at a public address.
	addr    string
	guarded bool
}

func newEgress(allow []string, idle time.Duration, log *slog.Logger) (*egress, error) {
	trusted := newHostPolicy(allow)
	trusted.any = false
	e := &egress{
		log:     log,
		trusted: trusted,
		idle:    idle,
		scopes:  map[*scope]struct{}{},
		tunnels: map[net.Conn]*scope{},
	}
	e.transport = &http.Transport{
		Proxy:                 nil, // never agentd's own proxy settings
		DialContext:           e.dialFromContext,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: idle,
		DisableCompression:    true, // the page's own Accept-Encoding goes through as it is
	}
	e.rp = &httputil.ReverseProxy{
		// The request is already in absolute form (http://host/path); it goes out as it came.
		Rewrite:   func(r *httputil.ProxyRequest) { r.Out.Host = r.In.Host },
		Transport: e.transport,
		// Event streams and chunked bodies flow as they arrive.
		FlushInterval: -1,
		ErrorHandler:  e.proxyError,
		// Only the proxy speaks for itself: a server's own egressHeader would pass its page off as
		// a refusal.
		ModifyResponse: func(r *http.Response) error { r.Header.Del(egressHeader); return nil },
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	base, err := e.open("")
	if err != nil {
		return nil, err
	}
	e.base = base
	return e, nil
}

// open starts the scope of a check whose top-level target is key.
func (e *egress) open(key string) (*scope, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%w: the egress proxy cannot listen: %w", ErrUnavailable, err)
	}
	s := &scope{e: e, key: key, ln: ln, served: make(chan struct{}), blocked: map[string]string{}}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = ln.Close()
		return nil, ErrClosed
	}
	e.scopes[s] = struct{}{}
	e.mu.Unlock()
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// addr is the scope's listen address (127.0.0.1:port).
func (s *scope) addr() string { return s.ln.Addr().String() }

// close stops the scope's listener and ends its tunnels. It is idempotent.
func (s *scope) close() {
	s.once.Do(func() {
		_ = s.srv.Close()
		<-s.served
		e := s.e
		e.mu.Lock()
		delete(e.scopes, s)
		for c, owner := range e.tunnels {
			if owner == s {
				_ = c.Close()
			}
		}
		e.mu.Unlock()
	})
}

// close stops every scope, ends every tunnel and waits for them.
func (e *egress) close() {
	e.mu.Lock()
	e.closed = true
	scopes := make([]*scope, 0, len(e.scopes))
	for s := range e.scopes {
		scopes = append(scopes, s)
	}
	e.mu.Unlock()
	for _, s := range scopes {
		s.close()
	}
	e.transport.CloseIdleConnections()
	e.pipes.Wait()
}

// checkKey is the target a check's page may reach on loopback: its own URL's host and port.
func checkKey(u *url.URL) string { return targetKey(u.Hostname(), portOf(u)) }

// targetKey names a target for the set of checks in flight: every loopback spelling of a port is
// one target, since all of them reach the same listener.
func targetKey(host, port string) string {
	host = normHost(host)
	if isLoopbackName(host) {
		return "loopback:" + port
	}
	return net.JoinHostPort(host, port)
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// isLoopbackName: localhost, *.localhost (RFC 6761: always loopback) or a loopback IP literal.
func isLoopbackName(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch u.Scheme {
	case "https", "wss":
		return "443"
	}
	return "80"
}

// decide is the policy; dialling a guarded verdict enforces the rest on the resolved address.
func (s *scope) decide(host, port string) verdict {
	host = normHost(host)
	own := s.key != "" && s.key == targetKey(host, port)
	if isLoopbackName(host) {
		if !own {
			return verdict{refused: "loopback, not the port of the preview being checked"}
		}
		dial := host
		if _, err := netip.ParseAddr(host); err != nil {
			// A name is not left to the resolver: *.localhost is loopback by definition.
			dial = "127.0.0.1"
		}
		return verdict{addr: net.JoinHostPort(dial, port)}
	}
	if own || s.e.trusted.allows(host) {
		return verdict{addr: net.JoinHostPort(host, port)}
	}
	return verdict{addr: net.JoinHostPort(host, port), guarded: true}
}

// dial connects as v says. A guarded dial refuses a non-public address before connect(2).
func (e *egress) dial(ctx context.Context, v verdict) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	if v.guarded {
		host, _, _ := net.SplitHostPort(v.addr)
		d.Control = web.PublicOnly(host)
	}
	return d.DialContext(ctx, "tcp", v.addr)
}

type (
	verdictKey struct{}
	scopeKey   struct{}
)

func (e *egress) dialFromContext(ctx context.Context, _, _ string) (net.Conn, error) {
	v, ok := ctx.Value(verdictKey{}).(verdict)
	if !ok {
		return nil, errors.New("browser: egress request without a verdict")
	}
	return e.dial(ctx, v)
}

func (s *scope) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodConnect {
		s.tunnel(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Scheme != "http" || r.URL.Host == "" {
		http.Error(w, "this is a forward proxy for http:// URLs and CONNECT", http.StatusBadRequest)
		return
	}
	host, port := r.URL.Hostname(), portOf(r.URL)
	v := s.decide(host, port)
	if v.refused != "" {
		s.refuse(w, host, port, v.refused)
		return
	}
	ctx := context.WithValue(context.WithValue(r.Context(), verdictKey{}, v), scopeKey{}, s)
	s.e.rp.ServeHTTP(w, r.WithContext(ctx))
}

// proxyError answers a request the proxy could not forward.
func (e *egress) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var be *web.BlockedError
	if s, ok := r.Context().Value(scopeKey{}).(*scope); ok && errors.As(err, &be) {
		host, port := r.URL.Hostname(), portOf(r.URL)
		if r.Method == http.MethodConnect {
			host, port, _ = net.SplitHostPort(r.Host)
		}
		s.refuse(w, host, port, blockReason(be))
		return
	}
	if r.Context().Err() != nil {
		return // the page went away
	}
	code := netError(err)
	w.Header().Set(egressHeader, code)
	http.Error(w, fmt.Sprintf("%s: %v", code, err), http.StatusBadGateway)
}

func blockReason(be *web.BlockedError) string {
	if be.Host != "" && be.Host != be.Addr.String() {
		return fmt.Sprintf("resolves to %s, a %s address", be.Addr, be.Reason)
	}
	return be.Reason
}

// netError names a dial failure as chromium would, so a preview that is down reads the same as
// without the proxy.
func netError(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "net::ERR_CONNECTION_REFUSED"
	case errors.As(err, &dnsErr):
		return "net::ERR_NAME_NOT_RESOLVED"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return "net::ERR_CONNECTION_TIMED_OUT"
	case errors.Is(err, syscall.ECONNRESET):
		return "net::ERR_CONNECTION_RESET"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "net::ERR_ADDRESS_UNREACHABLE"
	}
	return "net::ERR_CONNECTION_FAILED"
}

// refuse answers 403 and remembers the refusal for the check's report.
func (s *scope) refuse(w http.ResponseWriter, host, port, reason string) {
	target := net.JoinHostPort(normHost(host), port)
	s.mu.Lock()
	if len(s.blocked) < maxBlockRecords {
		s.blocked[target] = reason
	}
	s.mu.Unlock()
	s.e.log.Debug("egress refused", "target", target, "reason", reason)
	w.Header().Set(egressHeader, blockedPrefix+reason)
	http.Error(w, fmt.Sprintf("agentd refused to connect to %s (%s): a checked page reaches only its preview and the public internet", target, reason), http.StatusForbidden)
}

// refused returns the targets the scope refused, with why.
func (s *scope) refused() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.blocked)
}

// tunnel serves CONNECT: https, and WebSockets, which chromium always tunnels through an HTTP proxy.
func (s *scope) tunnel(w http.ResponseWriter, r *http.Request) {
	e := s.e
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	v := s.decide(host, port)
	if v.refused != "" {
		s.refuse(w, host, port, v.refused)
		return
	}
	e.log.Debug("egress tunnel", "target", r.Host)
	up, err := e.dial(r.Context(), v)
	if err != nil {
		e.proxyError(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, s)), err)
		return
	}
	down, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = up.Close()
		return
	}
	if !e.track(s, up, down) {
		_ = up.Close()
		_ = down.Close()
		return
	}
	defer e.pipes.Done()
	defer e.untrack(up, down)
	if _, err := io.WriteString(down, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent right behind the CONNECT are already read into buf.
	if n := buf.Reader.Buffered(); n > 0 {
		pending, _ := buf.Peek(n)
		if _, err := up.Write(pending); err != nil {
			return
		}
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	go func() { e.pipe(up, down, &last); done <- struct{}{} }()
	go func() { e.pipe(down, up, &last); done <- struct{}{} }()
	<-done
	// One side is finished: the tunnel is over.
	_ = up.Close()
	_ = down.Close()
	<-done
}

// track registers a tunnel's connections so closing its scope ends them; it fails once the scope
// closed.
func (e *egress) track(s *scope, cs ...net.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, open := e.scopes[s]; !open {
		return false
	}
	for _, c := range cs {
		e.tunnels[c] = s
	}
	e.pipes.Add(1)
	return true
}

func (e *egress) untrack(cs ...net.Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(e.tunnels, c)
	}
}

// pipe copies src to dst until either fails or the whole tunnel (both directions) was idle for
// e.idle: a page's open connection must not hold agentd's sockets for ever.
func (e *egress) pipe(dst, src net.Conn, last *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		_ = src.SetReadDeadline(time.Now().Add(e.idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			_ = dst.SetWriteDeadline(time.Now().Add(e.idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < e.idle {
				continue // the other direction is busy
			}
			return
		}
	}
}

// maxBlockedShown bounds the URLs a check's note lists.
const maxBlockedShown = 5

// reportBlocked tells the model which of the page's requests the egress guard refused: the failed
// requests say why, and a note sums it up. Refusals are matched to this page by what it asked for,
// and the scope is the check's own, so a check never reports what another check's page tried.
func (b *Browser) reportBlocked(res *Result, col *collector, sc *scope) {
	refused := sc.refused()
	if len(refused) == 0 {
		return
	}
	reasonOf := func(raw string) (string, bool) {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", false
		}
		r, ok := refused[net.JoinHostPort(normHost(u.Hostname()), portOf(u))]
		return r, ok
	}
	n, shown, seen := 0, []string{}, map[string]bool{}
	var targets []string
	for _, raw := range col.urls() {
		reason, ok := reasonOf(raw)
		if !ok {
			continue
		}
		n++
		if !seen[raw] {
			seen[raw] = true
			targets = append(targets, redact(raw))
			if len(shown) < maxBlockedShown {
				shown = append(shown, fmt.Sprintf("%s (%s)", clip(redact(raw)), reason))
			}
		}
	}
	if n == 0 {
		return
	}
	for i := range res.FailedRequests {
		f := &res.FailedRequests[i]
		if reason, ok := reasonOf(f.URL); ok && !strings.HasPrefix(f.Error, blockedPrefix) {
			f.Status, f.Error = 0, blockedPrefix+reason
		}
	}
	more := ""
	if len(seen) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(seen)-len(shown))
	}
	plural := "s"
	if n == 1 {
		plural = ""
	}
	res.Notes = append(res.Notes, fmt.Sprintf("Blocked %d request%s the page made to addresses a checked page may not reach (only the preview's own port on this host and public internet addresses): %s%s.",
		n, plural, strings.Join(shown, ", "), more))
	b.log.Info("blocked requests of a checked page", "url", redact(res.URL), "count", n, "targets", targets)
}
