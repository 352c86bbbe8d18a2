package preview

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loopback routes every sandbox port to one real HTTP server, standing in
// for the agent tunnel (which the app tests exercise for real).
type loopback struct {
	addr    string
	touches atomic.Int32
}

func (l *loopback) DialPort(ctx context.Context, _ string, _ int) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", l.addr)
}

func (l *loopback) Touch(context.Context, string) { l.touches.Add(1) }

const sid = "0b7c2f4e-4a51-4c1e-9a3e-5b0f6f2f8d11"

func newServer(t *testing.T, public string) (*Server, *loopback) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Host+" "+r.URL.RequestURI()+" cookie="+r.Header.Get("Cookie"))
	}))
	t.Cleanup(up.Close)
	lb := &loopback{addr: strings.TrimPrefix(up.URL, "http://")}
	s, err := New(lb, Options{Secret: []byte("s3cret"), TokenTTL: time.Minute, PublicURL: public})
	require.NoError(t, err)
	return s, lb
}

func TestPreviewURLShapes(t *testing.T) {
	s, _ := newServer(t, "http://localhost:8000")
	u, err := url.Parse(s.URL(sid, 5173))
	require.NoError(t, err)
	require.Equal(t, "p5173-"+sid+".preview.localhost:8000", u.Host)
	require.Equal(t, "/", u.Path)
	require.NotEmpty(t, u.Query().Get("token"))

	s, _ = newServer(t, "http://127.0.0.1:8000")
	u, err = url.Parse(s.URL(sid, 3000))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8000", u.Host)
	require.Equal(t, "/preview/"+sid+"/3000/", u.Path)
}

func TestPreviewAuthorisation(t *testing.T) {
	s, lb := newServer(t, "http://localhost:8000")
	h := s
	do := func(host, target string, cookie *http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Host = host
		if cookie != nil {
			r.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	host := "p5173-" + sid + ".preview.localhost:8000"
	tok := url.Values{"token": {s.sign("t", sid, 5173, time.Now().Add(time.Minute))}}.Encode()

	for _, tc := range []struct {
		name, host, target string
		want               int
	}{
		{"no credentials", host, "/", http.StatusUnauthorized},
		{"forged token", host, "/?token=x.y", http.StatusUnauthorized},
		{"token of another port", "p5174-" + sid + ".preview.localhost:8000", "/?" + tok, http.StatusUnauthorized},
		{"expired token", host, "/?token=" + s.sign("t", sid, 5173, time.Now().Add(-time.Second)), http.StatusUnauthorized},
		{"cookie-kind value used as token", host, "/?token=" + s.sign("c", sid, 5173, time.Now().Add(time.Minute)), http.StatusUnauthorized},
		{"not a preview host", "localhost:8000", "/", http.StatusNotFound},
		{"valid token redirects", host, "/app?x=1&" + tok, http.StatusFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, do(tc.host, tc.target, nil).Code)
		})
	}

	w := do(host, "/app?x=1&"+tok, nil)
	require.Equal(t, "/app?x=1", w.Header().Get("Location"))
	cookies := w.Result().Cookies()
	require.Len(t, cookies, 1)
	require.True(t, cookies[0].HttpOnly)

	w = do(host, "/app?x=1", &http.Cookie{Name: "other", Value: "v"})
	require.Equal(t, http.StatusUnauthorized, w.Code)
	before := lb.touches.Load()
	r := httptest.NewRequest(http.MethodGet, "/app?x=1", nil)
	r.Host = host
	r.AddCookie(cookies[0])
	r.AddCookie(&http.Cookie{Name: "app", Value: "1"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, host+" /app?x=1 cookie=app=1", rec.Body.String(), "Host kept, preview cookie stripped")
	require.Greater(t, lb.touches.Load(), before, "preview traffic is activity")

	// A token parameter that is not ours is the app's (Vite's HMR WebSocket sends its own): with the
	// cookie it reaches the dev server untouched.
	r = httptest.NewRequest(http.MethodGet, "/?token=vite-ws-token", nil)
	r.Host = host
	r.AddCookie(cookies[0])
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, host+" /?token=vite-ws-token cookie=", rec.Body.String())

	// Path-based fallback strips its prefix.
	ps, _ := newServer(t, "http://127.0.0.1:8000")
	pu, _ := url.Parse(ps.URL(sid, 3000))
	r = httptest.NewRequest(http.MethodGet, pu.RequestURI(), nil)
	r.Host = "127.0.0.1:8000"
	rec = httptest.NewRecorder()
	ps.ServeHTTP(rec, r)
	require.Equal(t, http.StatusFound, rec.Code)
	require.Equal(t, "/preview/"+sid+"/3000/", rec.Header().Get("Location"))
	c := rec.Result().Cookies()[0]
	require.Equal(t, "/preview/"+sid+"/3000/", c.Path)
	r = httptest.NewRequest(http.MethodGet, "/preview/"+sid+"/3000/src/main.js", nil)
	r.Host = "127.0.0.1:8000"
	r.AddCookie(c)
	rec = httptest.NewRecorder()
	ps.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "127.0.0.1:8000 /src/main.js cookie=", rec.Body.String())
}
