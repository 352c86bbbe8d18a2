package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"
)

// server is a test server that counts the requests it got, so a test can prove that a refused
// fetch never reached it.
type server struct {
	*httptest.Server
	hits atomic.Int32
}

func newServer(t *testing.T, h http.Handler) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// addr is the server's ip:port, the exact entry a test allows.
func (s *server) addr() string { return s.Listener.Addr().String() }

func serve(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		} else {
			w.Header()["Content-Type"] = nil // no sniffing by net/http either
		}
		_, _ = w.Write(body)
	}
}

// fetcherFor returns a fetcher with the production policy except that exactly the given servers
// may be reached.
func fetcherFor(t *testing.T, cfg FetchConfig, allowed ...*server) *Fetcher {
	t.Helper()
	for _, s := range allowed {
		cfg.Allow = append(cfg.Allow, s.addr())
	}
	f, err := NewFetcher(cfg)
	require.NoError(t, err)
	return f
}

const article = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Understanding Go Contexts | The Gopher Blog</title>
<script>window.analytics = "SHOULD NOT APPEAR"</script><style>.x{color:red}</style></head>
<body>
<header><nav><a href="/">Home</a> <a href="/about">About</a> <a href="/archive">Archive</a></nav></header>
<main><article>
<h1>Understanding Go Contexts</h1>
<p>Contexts carry <em>deadlines</em>, cancellation signals and request-scoped values across API
boundaries. The <a href="https://pkg.go.dev/context">context package</a> was added in Go 1.7, and
every function that does I/O should take one as its first parameter.</p>
<h2>Cancellation</h2>
<p>When a parent context is cancelled, all of its children are cancelled too. This makes it easy to
stop a whole tree of goroutines at once. See <a href="/posts/goroutines">the goroutine post</a> and
the <a href="https://go.dev/blog/context">official blog</a> for more background on the design.</p>
<ul><li>Use <code>context.WithCancel</code> for manual cancellation.</li>
<li>Use <code>context.WithTimeout</code> for deadlines.</li></ul>
<pre><code>ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
defer cancel()</code></pre>
<p>Never store a context in a struct; pass it explicitly. Read the <a href="https://pkg.go.dev/context">package
documentation</a> again if in doubt. This advice holds for libraries and applications alike.</p>
<p style="display:none">hidden tracking text</p>
</article></main>
<aside><h3>Related</h3><a href="/posts/channels">Channels</a></aside>
<footer>© 2026 The Gopher Blog · <a href="/privacy">Privacy</a></footer>
</body></html>`

func TestFetchReadsAPage(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/posts/contexts":
			serve("text/html; charset=utf-8", []byte(article))(w, r)
		case "/old":
			http.Redirect(w, r, "/posts/contexts", http.StatusMovedPermanently)
		case "/missing":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "<title>Not found</title><h1>404</h1><p>No post here.</p>")
		default:
			http.NotFound(w, r)
		}
	}))
	f := fetcherFor(t, FetchConfig{}, srv)

	p, err := f.Fetch(t.Context(), FetchRequest{URL: srv.URL + "/old#section"})
	require.NoError(t, err)
	require.Equal(t, 200, p.Status)
	require.Equal(t, srv.URL+"/posts/contexts", p.FinalURL)
	require.Equal(t, "text/html", p.ContentType)
	require.Equal(t, "Understanding Go Contexts | The Gopher Blog", p.Title)

	require.Contains(t, p.Text, "## Cancellation")
	require.Contains(t, p.Text, "The context package [1] was added in Go 1.7")
	require.Contains(t, p.Text, "See the goroutine post [2] and the official blog [3]")
	require.Contains(t, p.Text, "- Use `context.WithCancel` for manual cancellation.")
	require.Contains(t, p.Text, "```\nctx, cancel := context.WithTimeout(ctx, 5*time.Second)\ndefer cancel()\n```")
	require.Contains(t, p.Text, "Read the package documentation [1] again", "a repeated link reuses its number")
	for _, absent := range []string{"SHOULD NOT APPEAR", "color:red", "hidden tracking text", "Archive", "Privacy"} {
		require.NotContains(t, p.Text, absent)
	}
	require.Equal(t, []Link{
		{Text: "context package", URL: "https://pkg.go.dev/context"},
		{Text: "the goroutine post", URL: srv.URL + "/posts/goroutines"},
		{Text: "official blog", URL: "https://go.dev/blog/context"},
	}, p.Links)

	report := p.Report()
	require.Contains(t, report, "Fetched "+srv.URL+"/posts/contexts (HTTP 200 OK, text/html")
	require.Contains(t, report, "\nLinks:\n[1] https://pkg.go.dev/context\n[2] "+srv.URL+"/posts/goroutines\n[3] https://go.dev/blog/context")

	p, err = f.Fetch(t.Context(), FetchRequest{URL: srv.URL + "/missing"})
	require.NoError(t, err, "an error page is still a page")
	require.Equal(t, 404, p.Status)
	require.Contains(t, p.Text, "No post here.")
	require.Contains(t, p.Report(), "HTTP 404 Not Found")
}

func TestFetchPagesThroughLongText(t *testing.T) {
	var body strings.Builder
	for i := range 500 {
		fmt.Fprintf(&body, "line %03d\n", i)
	}
	srv := newServer(t, serve("text/plain", []byte(body.String())))
	f := fetcherFor(t, FetchConfig{MaxTextChars: 1000}, srv)

	p, err := f.Fetch(t.Context(), FetchRequest{URL: srv.URL})
	require.NoError(t, err)
	require.Equal(t, 4500, p.TotalChars)
	require.Len(t, p.Text, 1000)
	require.True(t, strings.HasPrefix(p.Text, "line 000\n"))
	require.Contains(t, p.Report(), "Characters 0–1000 of 4500: call fetch_url again with offset 1000 to read on.")

	var all strings.Builder
	for off := 0; off < p.TotalChars; off += 1000 {
		p, err := f.Fetch(t.Context(), FetchRequest{URL: srv.URL, Offset: off})
		require.NoError(t, err)
		require.Equal(t, off, p.Offset)
		all.WriteString(p.Text)
	}
	require.Equal(t, body.String(), all.String(), "the parts add up to the whole text")

	p, err = f.Fetch(t.Context(), FetchRequest{URL: srv.URL, Offset: 99999})
	require.NoError(t, err)
	require.Empty(t, p.Text)
	require.Contains(t, p.Report(), "offset 99999 is past the end")
}

func TestFetchContentTypes(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde")
	latin1 := []byte("Caf\xe9 cr\xe8me br\xfbl\xe9e")                                                                                                      // ISO-8859-1
	cyrillic := []byte("<html><head><meta charset=\"windows-1251\"><title>\xcf\xf0\xe8\xe2\xe5\xf2</title></head><body><p>\xcc\xe8\xf0</p></body></html>") // Привет / Мир
	utf16 := append([]byte{0xff, 0xfe}, []byte("h\x00i\x00 \x00\xe9\x00")...)                                                                              // UTF-16LE with BOM: "hi é"

	tests := []struct {
		name, contentType string
		body              []byte
		wantText          string
		wantTitle         string
		wantErr           error
		wantErrText       string
	}{
		{name: "plain text as is", contentType: "text/plain; charset=utf-8", body: []byte("  indented\n\tand tabbed\n"), wantText: "  indented\n\tand tabbed\n"},
		{name: "markdown as is", contentType: "text/markdown", body: []byte("# Title\n\n* item\n"), wantText: "# Title\n\n* item\n"},
		{name: "json as is", contentType: "application/json", body: []byte(`{"name":"mgx","tags":["a","b"]}`), wantText: `{"name":"mgx","tags":["a","b"]}`},
		{name: "problem json", contentType: "application/problem+json", body: []byte(`{"title":"bad"}`), wantText: `{"title":"bad"}`},
		{name: "declared latin-1", contentType: "text/plain; charset=iso-8859-1", body: latin1, wantText: "Café crème brûlée"},
		{name: "undeclared latin-1 falls back to windows-1252", contentType: "text/plain", body: latin1, wantText: "Café crème brûlée"},
		{name: "meta charset", contentType: "text/html", body: cyrillic, wantText: "Мир", wantTitle: "Привет"},
		{name: "utf-16 with BOM", contentType: "text/plain", body: utf16, wantText: "hi é"},
		{name: "no content type, sniffed html", contentType: "", body: []byte("<!DOCTYPE html><title>Sniffed</title><p>hello</p>"), wantText: "hello", wantTitle: "Sniffed"},
		{name: "octet-stream holding text", contentType: "application/octet-stream", body: []byte("just text\n"), wantText: "just text\n"},
		{name: "image refused", contentType: "image/png", body: png, wantErr: ErrUnsupportedContent, wantErrText: "is image/png"},
		{name: "pdf refused", contentType: "application/pdf", body: []byte("%PDF-1.7\n"), wantErr: ErrUnsupportedContent, wantErrText: "is application/pdf"},
		{name: "octet-stream binary refused", contentType: "application/octet-stream", body: png, wantErr: ErrUnsupportedContent, wantErrText: "binary"},
		{name: "sniffed binary refused", contentType: "", body: png, wantErr: ErrUnsupportedContent},
		{name: "text type with binary inside refused", contentType: "text/plain", body: append([]byte("ab"), 0, 1, 2, 3), wantErr: ErrUnsupportedContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, serve(tt.contentType, tt.body))
			p, err := fetcherFor(t, FetchConfig{}, srv).Fetch(t.Context(), FetchRequest{URL: srv.URL})
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Contains(t, err.Error(), tt.wantErrText)
				return
			}
			require.NoError(t, err)
			if strings.Contains(tt.name, "as is") || strings.Contains(tt.contentType, "plain") || tt.contentType == "application/octet-stream" {
				require.Equal(t, tt.wantText, p.Text)
			} else {
				require.Contains(t, p.Text, tt.wantText)
			}
			require.Equal(t, tt.wantTitle, p.Title)
		})
	}
}

func TestFetchBounds(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, strings.Repeat("x", 64<<10))
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/to-ftp":
			http.Redirect(w, r, "ftp://example.com/file", http.StatusFound)
		}
	}))
	f := fetcherFor(t, FetchConfig{MaxBytes: 10 << 10, Timeout: 2 * time.Second, MaxRedirects: 3, MaxTextChars: 100 << 10}, srv)

	p, err := f.Fetch(t.Context(), FetchRequest{URL: srv.URL + "/big"})
	require.NoError(t, err)
	require.True(t, p.BodyTruncated)
	require.Equal(t, 10<<10, p.Bytes)
	require.Len(t, p.Text, 10<<10)
	require.Contains(t, p.Report(), "the body was cut at 10 KB")

	start := time.Now()
	_, err = f.Fetch(t.Context(), FetchRequest{URL: srv.URL + "/slow"})
	require.ErrorIs(t, err, ErrFetchFailed)
	require.Contains(t, err.Error(), "did not answer within 2s")
	require.Less(t, time.Since(start), 4*time.Second)

	_, err = f.Fetch(t.Context(), FetchRequest{URL: srv.URL + "/loop"})
	require.ErrorIs(t, err, ErrFetchFailed)
	require.Contains(t, err.Error(), "more than 3 redirects")

	_, err = f.Fetch(t.Context(), FetchRequest{URL: srv.URL + "/to-ftp"})
	require.ErrorIs(t, err, ErrBadURL)

	for _, u := range []string{"ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "/relative", "http://user:pw@example.com/", "http://"} {
		_, err := f.Fetch(t.Context(), FetchRequest{URL: u})
		require.ErrorIs(t, err, ErrBadURL, u)
	}
}

// TestFetchRefusesInternalAddresses runs with the production policy: nothing is allowed.
func TestFetchRefusesInternalAddresses(t *testing.T) {
	target := newServer(t, serve("text/plain", []byte("internal secret")))
	_, port, err := net.SplitHostPort(target.addr())
	require.NoError(t, err)
	names := fakeDNS(t, map[string]netip.Addr{
		"intranet.example.com": netip.MustParseAddr("10.0.0.1"),
		"metadata.example.com": netip.MustParseAddr("169.254.169.254"),
		"rebind.example.com":   netip.MustParseAddr("127.0.0.1"),
		"ula.example.com":      netip.MustParseAddr("fd12:3456::1"),
	})
	f, err := NewFetcher(FetchConfig{Timeout: 5 * time.Second}, WithResolver(names))
	require.NoError(t, err)

	tests := []struct {
		url, reason string
	}{
		{"http://127.0.0.1:" + port + "/", "loopback"},
		{"http://127.1.2.3:" + port + "/", "loopback"},
		{"http://localhost:" + port + "/", "loopback"},
		{"http://[::1]:" + port + "/", "loopback"},
		{"http://[::ffff:127.0.0.1]:" + port + "/", "loopback"},
		{"http://10.0.0.1/", "private"},
		{"http://192.168.1.1/", "private"},
		{"http://172.16.5.4:8080/", "private"},
		{"http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"},
		{"http://[fe80::1]/", "link-local"},
		{"http://100.64.0.1/", "carrier-grade NAT"},
		{"http://0.0.0.0:" + port + "/", "unspecified"},
		{"http://224.0.0.1/", "multicast"},
		{"http://[64:ff9b::a9fe:a9fe]/", "link-local (cloud metadata) (embedded in IPv6)"},
		{"http://rebind.example.com:" + port + "/", "loopback"},
		{"http://intranet.example.com/", "private"},
		{"http://metadata.example.com/computeMetadata/v1/", "link-local (cloud metadata)"},
		{"http://ula.example.com/", "unique local (private)"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := f.Fetch(t.Context(), FetchRequest{URL: tt.url})
			require.ErrorIs(t, err, ErrBlockedAddress)
			var blocked *BlockedError
			require.ErrorAs(t, err, &blocked)
			require.Equal(t, tt.reason, blocked.Reason)
			require.Contains(t, err.Error(), "fetch_url only reaches public internet addresses")
		})
	}
	require.Zero(t, target.hits.Load(), "a refused fetch must never reach the server")
}

func TestFetchRefusesRedirectsToInternalAddresses(t *testing.T) {
	internal := newServer(t, serve("text/plain", []byte("internal secret")))
	_, internalPort, err := net.SplitHostPort(internal.addr())
	require.NoError(t, err)
	names := fakeDNS(t, map[string]netip.Addr{"rebind.example.com": netip.MustParseAddr("127.0.0.1")})

	allowed := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			serve("text/plain", []byte("public page"))(w, r)
		default:
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		}
	}))
	_, allowedPort, err := net.SplitHostPort(allowed.addr())
	require.NoError(t, err)
	// Exactly the redirecting server is allowed; everything else follows the production policy.
	f, err := NewFetcher(FetchConfig{Allow: []string{allowed.addr()}}, WithResolver(names))
	require.NoError(t, err)

	p, err := f.Fetch(t.Context(), FetchRequest{URL: allowed.URL + "/ok"})
	require.NoError(t, err)
	require.Equal(t, "public page", p.Text)

	for _, to := range []string{
		"http://127.0.0.1:" + internalPort + "/",
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[::1]:" + allowedPort + "/ok",
		"http://localhost:" + internalPort + "/",
		"http://rebind.example.com:" + internalPort + "/",
	} {
		t.Run(to, func(t *testing.T) {
			_, err := f.Fetch(t.Context(), FetchRequest{URL: allowed.URL + "/redirect?to=" + to})
			require.ErrorIs(t, err, ErrBlockedAddress)
		})
	}
	require.Zero(t, internal.hits.Load(), "no redirect reached the internal server")
}

func TestAllowList(t *testing.T) {
	a := newServer(t, serve("text/plain", []byte("a")))
	b := newServer(t, serve("text/plain", []byte("b")))

	f := fetcherFor(t, FetchConfig{}, a)
	_, err := f.Fetch(t.Context(), FetchRequest{URL: a.URL})
	require.NoError(t, err)
	_, err = f.Fetch(t.Context(), FetchRequest{URL: b.URL})
	require.ErrorIs(t, err, ErrBlockedAddress, "an ip:port entry allows that endpoint only")

	f, err = NewFetcher(FetchConfig{Allow: []string{"127.0.0.0/8"}})
	require.NoError(t, err)
	for _, s := range []*server{a, b} {
		_, err = f.Fetch(t.Context(), FetchRequest{URL: s.URL})
		require.NoError(t, err, "a prefix allows every port of its addresses")
	}

	_, err = NewFetcher(FetchConfig{Allow: []string{"intranet"}})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestClassify(t *testing.T) {
	for addr, want := range map[string]string{
		"8.8.8.8":             "",
		"1.1.1.1":             "",
		"2606:4700::1111":     "",
		"127.0.0.1":           "loopback",
		"::1":                 "loopback",
		"10.255.0.1":          "private",
		"172.31.255.255":      "private",
		"172.32.0.1":          "",
		"192.168.0.1":         "private",
		"fc00::1":             "unique local (private)",
		"169.254.169.254":     "link-local (cloud metadata)",
		"169.254.1.1":         "link-local",
		"fe80::1":             "link-local",
		"100.64.0.1":          "carrier-grade NAT",
		"100.128.0.1":         "",
		"0.0.0.0":             "unspecified",
		"0.1.2.3":             "\"this network\"",
		"::":                  "unspecified",
		"224.0.0.251":         "multicast",
		"ff02::1":             "multicast",
		"255.255.255.255":     "broadcast",
		"240.0.0.1":           "reserved",
		"198.18.0.1":          "benchmarking",
		"192.0.2.1":           "documentation",
		"::ffff:10.0.0.1":     "private",
		"64:ff9b::7f00:1":     "loopback (embedded in IPv6)",
		"64:ff9b::808:808":    "",
		"2002:a9fe:a9fe::1":   "link-local (cloud metadata) (embedded in IPv6)",
		"2002:808:808::1":     "",
		"2001:0:4136:e378::1": "Teredo",
		"2001:db8::1":         "documentation",
		"fec0::1":             "site-local",
		"::10.0.0.1":          "IPv4-compatible",
	} {
		require.Equal(t, want, classify(netip.MustParseAddr(addr)), addr)
	}
}

// fakeDNS serves A/AAAA answers for names on a loopback UDP port and returns a resolver asking
// it, so a test can make a public-looking name resolve to an internal address.
func fakeDNS(t *testing.T, names map[string]netip.Addr) *net.Resolver {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			addr, ok := names[strings.TrimSuffix(q.Name.String(), ".")]
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch {
			case ok && q.Type == dnsmessage.TypeA && addr.Is4():
				_ = b.AResource(rh, dnsmessage.AResource{A: addr.As4()})
			case ok && q.Type == dnsmessage.TypeAAAA && addr.Is6():
				_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: addr.As16()})
			}
			msg, err := b.Finish()
			if err == nil {
				_, _ = conn.WriteTo(msg, from)
			}
		}
	}()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", conn.LocalAddr().String())
		},
	}
}

func TestBlockedErrorMessage(t *testing.T) {
	e := &BlockedError{Host: "metadata.example.com", Addr: netip.MustParseAddr("169.254.169.254"), Reason: "link-local (cloud metadata)"}
	require.Equal(t, "refused to connect to metadata.example.com (metadata.example.com resolves to 169.254.169.254, a link-local (cloud metadata) address): fetch_url only reaches public internet addresses", e.Error())
	require.True(t, errors.Is(e, ErrBlockedAddress))
}
