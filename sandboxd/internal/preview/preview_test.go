package preview

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// upstream routes every sandbox port to one real HTTP server, standing in for the agent tunnel
// (which the app tests exercise for real). It answers with what reached it and echoes WebSockets.
type upstream struct {
	addr    string
	touches atomic.Int32
}

func (u *upstream) DialPort(ctx context.Context, _ string, _ int) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", u.addr)
}

func (u *upstream) Touch(context.Context, string) { u.touches.Add(1) }

func newUpstream(t *testing.T, h http.Handler) *upstream {
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isWebSocket(r) {
				c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
				if err != nil {
					return
				}
				defer func() { _ = c.CloseNow() }()
				for {
					typ, msg, err := c.Read(r.Context())
					if err != nil {
						return
					}
					if err := c.Write(r.Context(), typ, msg); err != nil {
						return
					}
				}
			}
			_, _ = io.WriteString(w, r.Host+" "+r.URL.RequestURI()+" cookie="+r.Header.Get("Cookie"))
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &upstream{addr: strings.TrimPrefix(srv.URL, "http://")}
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// fixture is a preview server over a real Redis, with sandbox records made through the store.
type fixture struct {
	t     *testing.T
	s     *Server
	st    *store.Store
	up    *upstream
	clock *clock
	n     int
}

func newFixture(t *testing.T, public string, up *upstream) *fixture {
	t.Helper()
	rdb, err := redisclient.New(t.Context(), stacktest.SharedRedis(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb)
	if up == nil {
		up = newUpstream(t, nil)
	}
	// At the start of a TTL window: URLs are stable within half a TTL counted from window starts, so
	// a test starting ten minutes before a boundary would see the URL change under it.
	c := &clock{t: time.Now().Truncate(time.Hour)}
	s, err := New(up, st, Options{Secret: []byte("a capability key of 32 bytes...."), TTL: time.Hour, PublicURL: public,
		KeepAlive: 50 * time.Millisecond, Now: c.now})
	require.NoError(t, err)
	return &fixture{t: t, s: s, st: st, up: up, clock: c}
}

// launch records a running sandbox for a new session and returns the session id.
func (f *fixture) launch() string {
	f.t.Helper()
	sid := uuid.NewString()
	f.relaunch(sid)
	return sid
}

// relaunch records a (new) running sandbox for sid, destroying the current one first.
func (f *fixture) relaunch(sid string) {
	f.t.Helper()
	ctx := f.t.Context()
	f.destroy(sid)
	f.n++
	res, err := f.st.BeginCreate(ctx, sid, "owner", "holder", time.Minute)
	require.NoError(f.t, err)
	require.Equal(f.t, store.CreateYours, res)
	// The local driver names an instance after its session: a new sandbox has the same id.
	require.NoError(f.t, f.st.FinishCreate(ctx, "holder", store.Record{SessionID: sid, InstanceID: "mgx-" + sid, InstanceName: "mgx-" + sid, Driver: "local"}))
}

func (f *fixture) destroy(sid string) {
	f.t.Helper()
	ctx := f.t.Context()
	rec, err := f.st.Get(ctx, sid)
	if err != nil {
		return
	}
	n, err := f.st.ClaimDestroy(ctx, sid, "reaper", time.Minute, time.Time{})
	require.NoError(f.t, err)
	require.Equal(f.t, store.Claimed, n)
	require.NoError(f.t, f.st.Delete(ctx, rec, "reaper"))
	// Creation times are in milliseconds; the next sandbox of the session must be another one.
	time.Sleep(2 * time.Millisecond)
}

func (f *fixture) url(sid string, port int) *url.URL {
	f.t.Helper()
	raw, err := f.s.URL(f.t.Context(), sid, port)
	require.NoError(f.t, err)
	require.NotEmpty(f.t, raw)
	u, err := url.Parse(raw)
	require.NoError(f.t, err)
	return u
}

// get sends a request for target to the preview server under host, as the gateway forwards it.
func (f *fixture) get(host, target string) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(f.t.Context(), http.MethodGet, "http://preview.internal/", nil)
	r.Host = host
	r.RequestURI = target
	u, err := url.ParseRequestURI(target)
	require.NoError(f.t, err)
	r.URL = u
	w := httptest.NewRecorder()
	f.s.ServeHTTP(w, r)
	return w
}

var capHost = regexp.MustCompile(`^p5173-[a-z2-7]{52}\.preview\.localhost:8000$`)

func TestURLShapes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "http://localhost:8000", nil)
	sid := f.launch()
	u := f.url(sid, 5173)
	require.Regexp(t, capHost, u.Host)
	require.Equal(t, "http", u.Scheme)
	require.Equal(t, "/", u.Path)
	require.Empty(t, u.RawQuery, "the credential is in the host, nothing in the query")
	require.Less(t, len(strings.Split(u.Hostname(), ".")[0]), 64, "a DNS label")
	require.NotContains(t, u.Host, sid, "the session id is not spelled out")

	// Listing again within half the TTL gives the same URL: a frame showing it is not reloaded.
	f.clock.add(10 * time.Minute)
	require.Equal(t, u.String(), f.url(sid, 5173).String())
	// Later a fresh one, which lives a whole TTL.
	f.clock.add(30 * time.Minute)
	require.NotEqual(t, u.String(), f.url(sid, 5173).String())

	for _, tc := range []struct{ public, want string }{
		{"https://mgx.example.com", `^https://p5173-[a-z2-7]{52}\.preview\.mgx\.example\.com/$`},
		{"http://127.0.0.1:8000", `^http://p5173-[a-z2-7]{52}\.preview\.localhost:8000/$`},
		{"http://[::1]:8000", `^http://p5173-[a-z2-7]{52}\.preview\.localhost:8000/$`},
	} {
		g := newFixture(t, tc.public, f.up)
		got, err := g.s.URL(t.Context(), g.launch(), 5173)
		require.NoError(t, err)
		require.Regexp(t, tc.want, got, tc.public)
	}

	// An IP address that is not loopback has no names to put previews under: no URLs, and why.
	g := newFixture(t, "http://203.0.113.7:8000", f.up)
	got, err := g.s.URL(t.Context(), g.launch(), 5173)
	require.NoError(t, err)
	require.Empty(t, got)
	require.ErrorContains(t, g.s.Off(), "previews need a host name")

	// No sandbox runs: no URL.
	got, err = f.s.URL(t.Context(), uuid.NewString(), 5173)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestCapability(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "http://localhost:8000", nil)
	sid := f.launch()
	u := f.url(sid, 5173)
	host := u.Host
	label, rest, _ := strings.Cut(host, ".")
	capText := strings.TrimPrefix(label, "p5173-")
	other := f.url(f.launch(), 5173)

	// Flipping one character of the MAC part gives another, forged capability.
	last := capText[len(capText)-2]
	flip := byte('a')
	if last == 'a' {
		flip = 'b'
	}
	forged := "p5173-" + capText[:len(capText)-2] + string(flip) + capText[len(capText)-1:] + "." + rest

	for _, tc := range []struct {
		name, host string
		want       int
	}{
		{"the URL works", host, http.StatusOK},
		{"host names are case-insensitive", strings.ToUpper(host), http.StatusOK},
		{"another session's URL works for that session", other.Host, http.StatusOK},
		{"the capability of another port", "p5174-" + capText + "." + rest, http.StatusUnauthorized},
		{"a forged capability", forged, http.StatusUnauthorized},
		{"a truncated capability", "p5173-" + capText[:40] + "." + rest, http.StatusNotFound},
		// The last character is "a" or "q" (one bit of data, four unused): "b" or "r" decode the same.
		{"a non-canonical spelling of the capability", "p5173-" + capText[:len(capText)-1] + string(capText[len(capText)-1]+1) + "." + rest, http.StatusNotFound},
		{"the old form with a session id", "p5173-" + sid + "." + rest, http.StatusNotFound},
		{"not a preview host", "localhost:8000", http.StatusNotFound},
		{"the right label under another domain", label + ".preview.evil.example", http.StatusNotFound},
		{"in-host clients use preview.localhost", label + ".preview.localhost:8202", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.get(tc.host, "/")
			require.Equal(t, tc.want, w.Code, w.Body.String())
			require.Empty(t, w.Header().Get("Location"))
		})
	}

	before := f.up.touches.Load()
	w := f.get(host, "/src/main.ts?token=vite-hmr-token&x=1")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, host+" /src/main.ts?token=vite-hmr-token&x=1 cookie=", w.Body.String(),
		"the Host and the whole query reach the dev server (Vite's HMR has a ?token= of its own)")
	require.Greater(t, f.up.touches.Load(), before, "preview traffic is activity")
	require.Equal(t, "same-origin", w.Header().Get("Referrer-Policy"), "the capability never leaves in a Referer")

	t.Run("expires", func(t *testing.T) {
		g := newFixture(t, "http://localhost:8000", f.up)
		h := g.url(g.launch(), 3000).Host
		require.Equal(t, http.StatusOK, g.get(h, "/").Code)
		g.clock.add(time.Hour + time.Second)
		w := g.get(h, "/")
		require.Equal(t, http.StatusUnauthorized, w.Code)
		require.Contains(t, w.Body.String(), "expired")
	})

	t.Run("dies with its sandbox, even when the next one has the same instance name", func(t *testing.T) {
		g := newFixture(t, "http://localhost:8000", f.up)
		id := g.launch()
		h := g.url(id, 3000).Host
		require.Equal(t, http.StatusOK, g.get(h, "/").Code)
		g.destroy(id)
		require.Equal(t, http.StatusUnauthorized, g.get(h, "/").Code)
		g.relaunch(id)
		require.Equal(t, http.StatusUnauthorized, g.get(h, "/").Code, "a URL of the previous sandbox")
		fresh := g.url(id, 3000).Host
		require.NotEqual(t, h, fresh)
		require.Equal(t, http.StatusOK, g.get(fresh, "/").Code)
	})

	t.Run("rotation revokes every URL handed out, then hands out new ones", func(t *testing.T) {
		g := newFixture(t, "http://localhost:8000", f.up)
		id := g.launch()
		a, b := g.url(id, 3000).Host, g.url(id, 3001).Host
		keep := g.url(g.launch(), 3000).Host
		require.NoError(t, g.s.Rotate(t.Context(), id))
		require.Equal(t, http.StatusUnauthorized, g.get(a, "/").Code)
		require.Equal(t, http.StatusUnauthorized, g.get(b, "/").Code)
		require.Equal(t, http.StatusOK, g.get(keep, "/").Code, "another session's previews are untouched")
		fresh := g.url(id, 3000).Host
		require.NotEqual(t, a, fresh)
		require.Equal(t, http.StatusOK, g.get(fresh, "/").Code)
		require.Equal(t, fresh, g.url(id, 3000).Host, "stable after a rotation too")
		// Twice within a second: the second still revokes what the first handed out.
		require.NoError(t, g.s.Rotate(t.Context(), id))
		require.Equal(t, http.StatusUnauthorized, g.get(fresh, "/").Code)
		require.Equal(t, http.StatusOK, g.get(g.url(id, 3000).Host, "/").Code)
	})
}

// A preview host never redirects by itself (issue 13.8: the token exchange's redirect sent
// `//evil.example/x?token=…` to `//evil.example/x`). Whatever the request target, the preview
// server either refuses it or hands it to the dev server unchanged; there is no redirect of ours to
// steer off the host.
func TestNoRedirectOffTheHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "http://localhost:8000", nil)
	host := f.url(f.launch(), 5173).Host
	for _, target := range []string{
		"//evil.example/x?token=abc",
		"//evil.example/x",
		`/\evil.example/x?token=abc`,
		"/%2F%2Fevil.example/x?token=abc",
		"/%5Cevil.example?token=abc",
		"///evil.example/x?token=abc",
		"/?token=abc&next=//evil.example",
	} {
		t.Run(target, func(t *testing.T) {
			w := f.get(host, target)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			require.Empty(t, w.Header().Get("Location"))
			u, err := url.ParseRequestURI(target)
			require.NoError(t, err)
			require.Equal(t, host+" "+u.RequestURI()+" cookie=", w.Body.String(), "passed to the dev server as it came")

			// Without a valid capability: refused, not redirected.
			w = f.get("p5173-"+strings.Repeat("a", 52)+".preview.localhost:8000", target)
			require.Equal(t, http.StatusUnauthorized, w.Code)
			require.Empty(t, w.Header().Get("Location"))
		})
	}
}

func TestResponseGuards(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sid=1; Domain=preview.localhost; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "pref=dark;domain=.preview.localhost")
		w.Header().Add("Set-Cookie", "plain=1; Path=/")
		w.Header().Set("Referrer-Policy", "unsafe-url")
		w.WriteHeader(http.StatusOK)
	}))
	f := newFixture(t, "http://localhost:8000", up)
	w := f.get(f.url(f.launch(), 5173).Host, "/")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, []string{"sid=1; Path=/; HttpOnly", "pref=dark", "plain=1; Path=/"}, w.Header().Values("Set-Cookie"),
		"a preview's cookies stay on its own host: none reaches the other previews under preview.<host>")
	require.Equal(t, "same-origin", w.Header().Get("Referrer-Policy"))
}

// A WebSocket is a standing use of its capability: a rotation closes it, and while it is open it
// keeps the sandbox active.
func TestWebSocketClosedOnRevocation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "http://localhost:8000", nil)
	srv := httptest.NewServer(f.s)
	t.Cleanup(srv.Close)
	sid := f.launch()
	u := f.url(sid, 5173)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// The handshake response's body is the connection, which c owns.
	c, _, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(srv.URL, "http://")+"/hmr", &websocket.DialOptions{Host: u.Host}) //nolint:bodyclose // see above
	require.NoError(t, err)
	defer func() { _ = c.CloseNow() }()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("ping")))
	_, msg, err := c.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, "ping", string(msg))
	before := f.up.touches.Load()
	require.Eventually(t, func() bool { return f.up.touches.Load() > before+2 }, 5*time.Second, 20*time.Millisecond,
		"an open WebSocket is activity though nothing passes")

	require.NoError(t, f.s.Rotate(t.Context(), sid))
	_, _, err = c.Read(ctx)
	require.Error(t, err, "the socket is closed once its capability is revoked")
	require.NoError(t, ctx.Err(), "closed by the revocation, not by the test's deadline")
}
