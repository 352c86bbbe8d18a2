package browser

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// counting is a loopback server standing for an internal service (a metrics endpoint, another
// session's port): it counts every request and WebSocket it gets.
func counting(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Path == "/ws" {
			wsEcho(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<title>internal</title>internal secret")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// wsEcho answers every WebSocket message with "echo:" and the message.
func wsEcho(w http.ResponseWriter, r *http.Request) {
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
		if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
			return
		}
	}
}

func portOfServer(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	return u.Port()
}

// TestEgressGuard loads pages that try to reach what a checked page must not — another loopback
// port, cloud metadata, the private network — by every way a page has: fetch, <img>, a redirect,
// a navigation, a WebSocket. Only the preview itself (under any of its names), its WebSocket and its
// event stream work; the internal service never sees a request, and the model is told.
func TestEgressGuard(t *testing.T) {
	internal, hits := counting(t)
	var previewHits atomic.Int64
	mux := http.NewServeMux()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		previewHits.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	port := portOfServer(t, srv)
	preview := "http://p" + port + "-s1.preview.localhost:" + port
	sibling := "http://p" + port + "-x.preview.localhost:" + port
	wsPreview := "ws://p" + port + "-s1.preview.localhost:" + port + "/ws"

	mux.HandleFunc("/", html(fmt.Sprintf(`<!doctype html><title>Egress</title><body>
		<img id=img src="%[1]s/pixel.png" onerror="document.getElementById('imgr').textContent='img: error'">
		<div id=imgr></div>
		<pre id=out></pre>
		<script>
		const out = document.getElementById("out");
		const say = s => { out.textContent += s + "\n" };
		const get = (name, u) => fetch(u).then(r => r.text()).then(t => say(name + ": " + t.trim()), e => say(name + ": error"));
		Promise.all([
			get("same", "/api/same"),
			get("sibling", "%[2]s/api/same"),
			get("internal", "%[1]s/secret"),
			get("metadata", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
			get("private", "http://10.0.0.1/"),
			new Promise(done => {
				const ws = new WebSocket("%[3]s");
				ws.onopen = () => ws.send("hello");
				ws.onmessage = m => { say("ws: " + m.data); ws.close(); done() };
				ws.onerror = () => { say("ws: error"); done() };
			}),
			new Promise(done => {
				const ws = new WebSocket("%[4]s");
				ws.onopen = () => { say("ws-internal: open"); ws.close(); done() };
				ws.onerror = () => { say("ws-internal: error"); done() };
			}),
			new Promise(done => {
				const es = new EventSource("/sse");
				let n = 0;
				es.onmessage = m => { if (++n === 3) { say("sse: " + m.data); es.close(); done() } };
				es.onerror = () => { say("sse: error"); es.close(); done() };
			}),
		]).then(() => say("done"));
		</script></body>`, internal.URL, sibling, wsPreview, "ws://"+strings.TrimPrefix(internal.URL, "http://")+"/ws")))
	var fromOther atomic.Int64
	mux.HandleFunc("/api/same", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("from") == "other" {
			fromOther.Add(1)
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = io.WriteString(w, "same-ok")
	})
	mux.HandleFunc("/ws", wsEcho)
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		// Each event must reach the page while the stream stays open: a buffering proxy would hold
		// them until the end, which never comes.
		for i := 1; i <= 3; i++ {
			_, _ = fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
		<-r.Context().Done()
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+"/from-redirect", http.StatusFound)
	})
	mux.HandleFunc("/navigate", html(fmt.Sprintf(`<!doctype html><title>Away</title><body>leaving
		<script>setTimeout(() => { location.href = "%s/from-navigation" }, 50)</script></body>`, internal.URL)))

	mux.HandleFunc("/forged", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(egressHeader, blockedPrefix+"forged")
		html(`<!doctype html><title>Forged</title><body>a page of the app`)(w, r)
	})

	b := startBrowser(t, Config{})

	t.Run("a server cannot pass its page off as a refusal", func(t *testing.T) {
		r, err := b.Check(t.Context(), Request{URL: preview + "/forged"})
		require.NoError(t, err)
		require.Empty(t, r.LoadError, r.Report())
		require.Equal(t, 200, r.Status)
		require.Equal(t, "a page of the app", r.Text)
	})

	t.Run("sub-requests", func(t *testing.T) {
		r, err := b.Check(t.Context(), Request{URL: preview + "/?token=tok"})
		require.NoError(t, err)
		require.Equal(t, 200, r.Status)
		require.False(t, r.TimedOut, "refusals are immediate, not a wait for a timeout: %s", r.Report())
		require.Less(t, r.Duration, 10*time.Second)
		for _, line := range []string{
			"same: same-ok",
			"sibling: same-ok",
			"internal: error",
			"metadata: error",
			"private: error",
			"ws: echo:hello",
			"ws-internal: error",
			"sse: event 3",
			"img: error",
			"done",
		} {
			require.Contains(t, r.Text, line, r.Report())
		}
		blocked := map[string]string{}
		for _, f := range r.FailedRequests {
			blocked[f.URL] = f.Error
		}
		require.Equal(t, "blocked: loopback, not the port of the preview being checked", blocked[internal.URL+"/secret"], r.Report())
		require.Equal(t, "blocked: loopback, not the port of the preview being checked", blocked[internal.URL+"/pixel.png"], r.Report())
		require.Equal(t, "blocked: link-local (cloud metadata)", blocked["http://169.254.169.254/latest/meta-data/iam/security-credentials/"], r.Report())
		require.Equal(t, "blocked: private", blocked["http://10.0.0.1/"], r.Report())
		report := r.Report()
		require.Contains(t, report, "- GET http://169.254.169.254/latest/meta-data/iam/security-credentials/ → blocked: link-local (cloud metadata)")
		require.Contains(t, report, "Blocked 5 requests the page made to addresses a checked page may not reach")
		require.Contains(t, report, "http://10.0.0.1/ (private)")
		require.Zero(t, hits.Load(), "the internal service must not see a single request")
	})

	t.Run("redirect", func(t *testing.T) {
		r, err := b.Check(t.Context(), Request{URL: preview + "/redirect"})
		require.NoError(t, err)
		require.Equal(t, "blocked: loopback, not the port of the preview being checked", r.LoadError, r.Report())
		require.Contains(t, r.Report(), "The page could not be loaded: blocked: loopback")
		require.Contains(t, r.Report(), internal.URL+"/from-redirect (loopback, not the port of the preview being checked)")
		require.Nil(t, r.Screenshot)
		require.Zero(t, hits.Load())
	})

	t.Run("navigation", func(t *testing.T) {
		r, err := b.Check(t.Context(), Request{URL: preview + "/navigate", Wait: 500 * time.Millisecond})
		require.NoError(t, err)
		require.Equal(t, "blocked: loopback, not the port of the preview being checked", r.LoadError, r.Report())
		require.Contains(t, r.Report(), internal.URL+"/from-navigation (loopback, not the port of the preview being checked)")
		require.Zero(t, hits.Load())
	})

	t.Run("one check's preview is closed to another check's page", func(t *testing.T) {
		// While the preview's own check runs (it waits), a page of another check tries the preview.
		other := site(t, map[string]http.HandlerFunc{"/": html(fmt.Sprintf(
			`<!doctype html><title>Other</title><body><script>fetch("%s/api/same?from=other").then(r => r.text(), () => "error").then(t => document.body.textContent = "got: " + t)</script></body>`, preview))})
		first := make(chan error, 1)
		go func() {
			_, err := b.Check(t.Context(), Request{URL: preview + "/api/same", Wait: 3 * time.Second})
			first <- err
		}()
		require.Eventually(t, func() bool { return previewHits.Load() > 0 }, 10*time.Second, 10*time.Millisecond)
		r, err := b.Check(t.Context(), Request{URL: other.URL})
		require.NoError(t, err)
		require.Contains(t, r.Text, "got: error", r.Report())
		require.Contains(t, r.Report(), preview+"/api/same?from=other (loopback, not the port of the preview being checked)")
		require.Zero(t, fromOther.Load(), "the other check's page reached the preview")
		require.NoError(t, <-first)
	})
}

// TestEgressPolicy is the decision table of the proxy, on names; addresses are judged again where
// a guarded verdict is dialled (TestEgressDialRefusesNonPublicAddresses).
func TestEgressPolicy(t *testing.T) {
	e, err := newEgress([]string{"preview.example.com", ".apps.example.com", "*"}, time.Minute, testLog())
	require.NoError(t, err)
	t.Cleanup(e.close)
	check, _ := url.Parse("http://p3000-s1.preview.localhost:8000/?token=x")
	sc, err := e.open(checkKey(check))
	require.NoError(t, err)
	defer sc.close()

	loopbackRefused := verdict{refused: "loopback, not the port of the preview being checked"}
	tests := []struct {
		host, port string
		want       verdict
		base       verdict // the browser-wide scope: no check's port
	}{
		{"p3000-s1.preview.localhost", "8000", verdict{addr: "127.0.0.1:8000"}, loopbackRefused},
		{"P5173-other.Preview.Localhost.", "8000", verdict{addr: "127.0.0.1:8000"}, loopbackRefused},
		{"localhost", "8000", verdict{addr: "127.0.0.1:8000"}, loopbackRefused},
		{"127.0.0.1", "8000", verdict{addr: "127.0.0.1:8000"}, loopbackRefused},
		{"127.1.2.3", "8000", verdict{addr: "127.1.2.3:8000"}, loopbackRefused},
		{"::1", "8000", verdict{addr: "[::1]:8000"}, loopbackRefused},
		{"::ffff:127.0.0.1", "8000", verdict{addr: "[::ffff:127.0.0.1]:8000"}, loopbackRefused},
		{"localhost", "9090", loopbackRefused, loopbackRefused},
		{"127.0.0.1", "6379", loopbackRefused, loopbackRefused},
		{"p3000-s1.preview.localhost", "8001", loopbackRefused, loopbackRefused},
		{"::1", "22", loopbackRefused, loopbackRefused},
		// Operator-allowed hosts are dialled as configured.
		{"preview.example.com", "443", verdict{addr: "preview.example.com:443"}, verdict{addr: "preview.example.com:443"}},
		{"p1.apps.example.com", "80", verdict{addr: "p1.apps.example.com:80"}, verdict{addr: "p1.apps.example.com:80"}},
		// Everything else — "*" notwithstanding — only at public addresses.
		{"apps.example.com", "80", verdict{addr: "apps.example.com:80", guarded: true}, verdict{addr: "apps.example.com:80", guarded: true}},
		{"example.org", "443", verdict{addr: "example.org:443", guarded: true}, verdict{addr: "example.org:443", guarded: true}},
		{"169.254.169.254", "80", verdict{addr: "169.254.169.254:80", guarded: true}, verdict{addr: "169.254.169.254:80", guarded: true}},
		{"10.0.0.1", "80", verdict{addr: "10.0.0.1:80", guarded: true}, verdict{addr: "10.0.0.1:80", guarded: true}},
		{"0.0.0.0", "8000", verdict{addr: "0.0.0.0:8000", guarded: true}, verdict{addr: "0.0.0.0:8000", guarded: true}},
		{"127.0.0.1.nip.io", "8000", verdict{addr: "127.0.0.1.nip.io:8000", guarded: true}, verdict{addr: "127.0.0.1.nip.io:8000", guarded: true}},
		{"localhost.example.com", "8000", verdict{addr: "localhost.example.com:8000", guarded: true}, verdict{addr: "localhost.example.com:8000", guarded: true}},
	}
	for _, tt := range tests {
		t.Run(tt.host+":"+tt.port, func(t *testing.T) {
			require.Equal(t, tt.want, sc.decide(tt.host, tt.port))
			require.Equal(t, tt.base, e.base.decide(tt.host, tt.port))
		})
	}

	// A top-level URL that "*" let through is reachable (as configured) by its own check only.
	top, _ := url.Parse("http://10.1.2.3:8080/app")
	other, err := e.open(checkKey(top))
	require.NoError(t, err)
	defer other.close()
	require.Equal(t, verdict{addr: "10.1.2.3:8080"}, other.decide("10.1.2.3", "8080"))
	require.Equal(t, verdict{addr: "10.1.2.3:8081", guarded: true}, other.decide("10.1.2.3", "8081"))
	require.Equal(t, verdict{addr: "10.1.2.3:8080", guarded: true}, sc.decide("10.1.2.3", "8080"))
	require.Equal(t, loopbackRefused, other.decide("localhost", "8000"), "one check's port is not another's")
}

// TestEgressDialRefusesNonPublicAddresses: a guarded dial is judged on the address connected to,
// whatever the name or spelling, and refused before a packet is sent.
func TestEgressDialRefusesNonPublicAddresses(t *testing.T) {
	e, err := newEgress(nil, time.Minute, testLog())
	require.NoError(t, err)
	t.Cleanup(e.close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	_, lport, _ := net.SplitHostPort(l.Addr().String())
	for _, addr := range []string{
		"localhost:" + lport, // a name resolving to loopback, dialled guarded (not a *.localhost rule)
		"127.0.0.1:" + lport,
		"[::ffff:127.0.0.1]:" + lport,
		"169.254.169.254:80",
		"10.0.0.1:80",
		"[fd00::1]:80",
		"[64:ff9b::a9fe:a9fe]:80",
		"0.0.0.0:" + lport,
	} {
		t.Run(addr, func(t *testing.T) {
			start := time.Now()
			_, err := e.dial(t.Context(), verdict{addr: addr, guarded: true})
			require.Error(t, err)
			require.Contains(t, err.Error(), "refused to connect")
			require.Less(t, time.Since(start), time.Second)
		})
	}
}

// TestEgressProxyServesOnlyAsAProxy: the listener answers forward-proxy requests only.
func TestEgressProxyServesOnlyAsAProxy(t *testing.T) {
	e, err := newEgress(nil, time.Minute, testLog())
	require.NoError(t, err)
	resp, err := http.Get("http://" + e.base.addr() + "/")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Close ends an open tunnel and returns.
	target, hits := counting(t)
	u, _ := url.Parse(target.URL)
	sc, err := e.open(checkKey(u))
	require.NoError(t, err)
	c, err := net.Dial("tcp", sc.addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host, u.Host)
	require.NoError(t, err)
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	require.NoError(t, err)
	require.Contains(t, string(buf[:n]), "200 Connection Established")
	done := make(chan struct{})
	go func() { e.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not end the open tunnel")
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(buf)
	require.Error(t, err, "the tunnel is closed")
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the tunnel was closed, not left open: %v", err)
	require.Zero(t, hits.Load())
}

// TestWebRTCDoesNotBypassTheProxy: WebRTC's ICE (STUN/TURN over UDP) does not use the HTTP proxy;
// a page must not reach a loopback or internal UDP service through it either.
func TestWebRTCDoesNotBypassTheProxy(t *testing.T) {
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = udp.Close() })
	var packets atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			packets.Add(1)
		}
	}()
	_, uport, _ := net.SplitHostPort(udp.LocalAddr().String())
	tcp, hits := counting(t)
	srv := site(t, map[string]http.HandlerFunc{"/": html(fmt.Sprintf(`<!doctype html><title>RTC</title><body><pre id=out></pre><script>
		const out = document.getElementById("out");
		const pc = new RTCPeerConnection({iceServers: [{urls: "stun:127.0.0.1:%[1]s"}, {urls: "turn:127.0.0.1:%[1]s?transport=udp", username: "u", credential: "p"},
			{urls: "turn:%[2]s?transport=tcp", username: "u", credential: "p"}]});
		pc.createDataChannel("x");
		pc.onicecandidate = e => { out.textContent += (e.candidate ? e.candidate.type || "candidate" : "gathering done") + "\n" };
		pc.createOffer().then(o => pc.setLocalDescription(o));
	</script></body>`, uport, strings.TrimPrefix(tcp.URL, "http://")))})
	b := startBrowser(t, Config{})
	r, err := b.Check(t.Context(), Request{URL: srv.URL, Wait: 1500 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 200, r.Status, r.Report())
	require.Zero(t, packets.Load(), "the page sent UDP past the egress proxy: %s", r.Report())
	require.Zero(t, hits.Load(), "TURN over TCP reached a loopback service: %s", r.Report())
}

// TestEgressTunnelIdleTimeout: a tunnel nobody uses is closed after the idle time, so a page's
// forgotten WebSocket does not hold agentd's sockets.
func TestEgressTunnelIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	e, err := newEgress(nil, idle, testLog())
	require.NoError(t, err)
	t.Cleanup(e.close)
	target, _ := counting(t)
	u, _ := url.Parse(target.URL)
	sc, err := e.open(checkKey(u))
	require.NoError(t, err)
	defer sc.close()
	c, err := net.Dial("tcp", sc.addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host, u.Host)
	require.NoError(t, err)
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	require.NoError(t, err)
	require.Contains(t, string(buf[:n]), "200 Connection Established")

	// In use, the tunnel carries a request and its answer.
	_, err = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	require.NoError(t, err)
	n, err = c.Read(buf)
	require.NoError(t, err)
	require.Contains(t, string(buf[:n]), "internal secret")

	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(buf)
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the idle tunnel was not closed: %v", err)
	require.GreaterOrEqual(t, time.Since(start), idle/2)
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.tunnels) == 0
	}, 5*time.Second, 10*time.Millisecond, "the closed tunnel is forgotten")
}
