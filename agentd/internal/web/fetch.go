package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
	"golang.org/x/text/encoding"
)

// Errors of Fetch. Each comes with a message meant for the model.
var (
	// ErrBadURL: not an absolute http(s) URL.
	ErrBadURL = errors.New("web: invalid URL")
	// ErrUnsupportedContent: the resource is binary (an image, a PDF, an archive…).
	ErrUnsupportedContent = errors.New("web: unsupported content")
	// ErrFetchFailed: the server could not be reached or the transfer failed.
	ErrFetchFailed = errors.New("web: fetch failed")
)

// Fetcher fetches web pages for fetch_url: a GET bounded in time, size and redirects, refused for
// any address that is not on the public internet (see guard), and turned into readable text.
type Fetcher struct {
	cfg    FetchConfig
	guard  *guard
	client *http.Client
}

// FetchOption adjusts a Fetcher.
type FetchOption func(*fetchOptions)

type fetchOptions struct {
	resolver *net.Resolver
}

// WithResolver resolves host names with r instead of the system resolver (tests use it to serve
// names that resolve to internal addresses).
func WithResolver(r *net.Resolver) FetchOption {
	return func(o *fetchOptions) { o.resolver = r }
}

// NewFetcher returns a Fetcher, or ErrInvalidConfig.
func NewFetcher(cfg FetchConfig, opts ...FetchOption) (*Fetcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var o fetchOptions
	for _, opt := range opts {
		opt(&o)
	}
	g, err := newGuard(cfg.Allow)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Resolver: o.resolver}
	transport := &http.Transport{
		// No proxy: through a proxy the guard would only ever see the proxy's address.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := *dialer
			d.Control = g.control(hostOf(addr))
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        16,
		IdleConnTimeout:     30 * time.Second,
	}
	f := &Fetcher{cfg: cfg, guard: g}
	f.client = &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return fmt.Errorf("%w: more than %d redirects", ErrFetchFailed, cfg.MaxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("%w: redirect to a %s: URL", ErrBadURL, req.URL.Scheme)
			}
			return f.checkLiteral(req.URL)
		},
	}
	return f, nil
}

// FetchRequest is one fetch.
type FetchRequest struct {
	URL string
	// Offset is the character of the readable text to start from, to read a long page in parts.
	Offset int
}

// Page is a fetched resource as readable text.
type Page struct {
	URL      string `json:"url"`
	FinalURL string `json:"final_url"`
	// Status is the HTTP status; a page answering ≥ 400 is still a Page (its text often says why).
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	Title       string `json:"title,omitempty"`
	// Text is the window [Offset, Offset+MaxTextChars) of the readable text: for HTML the main
	// content as light Markdown (headings, lists, code) with links marked [n]; other text as it is.
	Text       string `json:"text"`
	Offset     int    `json:"offset"`
	TotalChars int    `json:"total_chars"`
	// Links are the citations: Links[i] is marker [i+1] in Text.
	Links []Link `json:"links,omitempty"`
	// BodyTruncated says the body was longer than the byte cap and was cut.
	BodyTruncated bool `json:"body_truncated,omitempty"`
	Bytes         int  `json:"bytes"`
}

// Link is a citation of a page.
type Link struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}

// Fetch GETs req.URL and returns it as readable text. Errors are ErrBadURL, ErrBlockedAddress (a
// *BlockedError), ErrUnsupportedContent, ErrFetchFailed or the context's.
func (f *Fetcher) Fetch(ctx context.Context, req FetchRequest) (*Page, error) {
	u, err := parseURL(req.URL)
	if err != nil {
		return nil, err
	}
	if req.Offset < 0 {
		return nil, fmt.Errorf("%w: offset %d is negative", ErrBadURL, req.Offset)
	}
	if err := f.checkLiteral(u); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	hreq.Header.Set("User-Agent", f.cfg.UserAgent)
	hreq.Header.Set("Accept", "text/html,application/xhtml+xml,text/plain;q=0.9,text/markdown;q=0.9,application/json;q=0.8,*/*;q=0.5")
	hreq.Header.Set("Accept-Language", "en;q=1.0, *;q=0.5")
	resp, err := f.client.Do(hreq)
	if err != nil {
		return nil, f.describe(ctx, u, err)
	}
	defer resp.Body.Close()

	page := &Page{URL: u.String(), FinalURL: resp.Request.URL.String(), Status: resp.StatusCode}
	mediaType, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if kind := classifyMedia(mediaType); kind == kindBinary {
		return nil, fmt.Errorf("%w: %s is %s%s; fetch_url reads HTML and text (for a file, download it in the sandbox instead)",
			ErrUnsupportedContent, page.FinalURL, mediaType, sizeOf(resp.ContentLength))
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, f.describe(ctx, u, err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		body, page.BodyTruncated = body[:f.cfg.MaxBytes], true
	}
	page.Bytes = len(body)
	if mediaType == "" {
		mediaType, params, _ = mime.ParseMediaType(http.DetectContentType(body))
	}
	kind := classifyMedia(mediaType)
	if kind == kindBinary || kind == kindUnknown && looksBinary(body) {
		return nil, fmt.Errorf("%w: %s is %s (binary)%s; fetch_url reads HTML and text (for a file, download it in the sandbox instead)",
			ErrUnsupportedContent, page.FinalURL, orUnknown(mediaType), sizeOf(int64(len(body))))
	}
	page.ContentType = mediaType

	var text string
	if kind == kindHTML {
		decoded := decode(body, mediaType, params, true)
		base := resp.Request.URL
		doc := extract(decoded, base)
		page.Title, text, page.Links = doc.title, doc.text, doc.links
	} else {
		text = strings.ReplaceAll(decode(body, mediaType, params, false), "\r\n", "\n")
		if looksBinary([]byte(text)) {
			return nil, fmt.Errorf("%w: %s declares %s but holds binary data", ErrUnsupportedContent, page.FinalURL, mediaType)
		}
	}
	runes := []rune(text)
	page.TotalChars = len(runes)
	page.Offset = req.Offset
	from := min(req.Offset, len(runes))
	page.Text = string(runes[from:min(from+f.cfg.MaxTextChars, len(runes))])
	return page, nil
}

// checkLiteral refuses a URL whose host is a non-public IP literal before any socket exists (the
// dial-time guard would refuse it too, but an IPv6 literal on a host without IPv6 would fail with a
// less telling error first).
func (f *Fetcher) checkLiteral(u *url.URL) error {
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil //nolint:nilerr // a name, not a literal: the dial-time guard decides on what it resolves to
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%w: port %q", ErrBadURL, port)
	}
	return f.guard.check(u.Hostname(), netip.AddrPortFrom(addr, uint16(p)))
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %q: %w", ErrBadURL, raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: %q: only http and https URLs can be fetched", ErrBadURL, raw)
	case u.Host == "":
		return nil, fmt.Errorf("%w: %q has no host", ErrBadURL, raw)
	case u.User != nil:
		return nil, fmt.Errorf("%w: %q: URLs with credentials are not fetched", ErrBadURL, raw)
	}
	u.Fragment = ""
	return u, nil
}

// describe turns a transport error into one the model can act on. A refused address keeps its
// *BlockedError so the caller can tell it apart.
func (f *Fetcher) describe(ctx context.Context, u *url.URL, err error) error {
	var blocked *BlockedError
	if errors.As(err, &blocked) {
		return blocked
	}
	if errors.Is(err, ErrBadURL) || errors.Is(err, ErrFetchFailed) {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return uerr.Err
		}
		return err
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: %s did not answer within %s", ErrFetchFailed, u.Host, f.cfg.Timeout)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return fmt.Errorf("%w: the host %s does not exist (DNS: no such host)", ErrFetchFailed, dnsErr.Name)
		}
		return fmt.Errorf("%w: resolving %s failed: %s", ErrFetchFailed, dnsErr.Name, dnsErr.Err)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return fmt.Errorf("%w: cannot connect to %s: %w", ErrFetchFailed, u.Host, opErr.Err)
	}
	return fmt.Errorf("%w: %s: %v", ErrFetchFailed, u.Redacted(), unwrapURLError(err)) //nolint:errorlint // shown, not wrapped: a wrapped context error would read as the call's own cancellation
}

func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

type mediaKind int

const (
	kindUnknown mediaKind = iota
	kindHTML
	kindText
	kindBinary
)

// classifyMedia sorts a media type into what fetch_url does with it.
func classifyMedia(t string) mediaKind {
	switch {
	case t == "":
		return kindUnknown
	case t == "text/html" || t == "application/xhtml+xml":
		return kindHTML
	case strings.HasPrefix(t, "text/"),
		t == "application/json", strings.HasSuffix(t, "+json"), t == "application/x-ndjson",
		t == "application/xml", strings.HasSuffix(t, "+xml"),
		t == "application/javascript", t == "application/x-javascript", t == "application/ecmascript",
		t == "application/x-yaml", t == "application/yaml", t == "application/toml",
		t == "application/x-sh", t == "application/sql", t == "application/graphql":
		return kindText
	case t == "application/octet-stream":
		// Servers label anything unknown so; the bytes decide.
		return kindUnknown
	}
	return kindBinary
}

// looksBinary reports bytes that are not text: a NUL, or mostly invalid UTF-8 in the first KB
// (legacy single-byte encodings stay mostly decodable as text).
func looksBinary(b []byte) bool {
	head := b[:min(len(b), 1024)]
	if bytes.IndexByte(head, 0) >= 0 {
		return true
	}
	bad := 0
	for len(head) > 0 {
		r, n := utf8.DecodeRune(head)
		if r == utf8.RuneError && n == 1 {
			bad++
		}
		head = head[n:]
	}
	return bad > len(b[:min(len(b), 1024)])/4
}

// decode converts body to UTF-8: the charset the server declared, else for HTML a BOM or a
// <meta charset>, else UTF-8 when the bytes are valid UTF-8, else windows-1252 (what browsers do).
func decode(body []byte, mediaType string, params map[string]string, isHTML bool) string {
	var enc encoding.Encoding
	if label := params["charset"]; label != "" {
		enc, _ = charset.Lookup(label)
	}
	if enc == nil {
		switch {
		case isHTML:
			enc, _, _ = charset.DetermineEncoding(body, mime.FormatMediaType(mediaType, params))
		case utf8.Valid(body):
			return strings.TrimPrefix(string(body), "\ufeff")
		default:
			enc, _, _ = charset.DetermineEncoding(body, mime.FormatMediaType(mediaType, params))
		}
	}
	out, err := enc.NewDecoder().Bytes(body)
	if err != nil {
		return strings.ToValidUTF8(string(body), "\ufffd")
	}
	return strings.TrimPrefix(string(out), "\ufeff")
}

func sizeOf(n int64) string {
	if n < 0 {
		return ""
	}
	switch {
	case n >= 1<<20:
		return fmt.Sprintf(", %.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf(", %d KB", n>>10)
	}
	return fmt.Sprintf(", %d bytes", n)
}

func orUnknown(s string) string {
	if s == "" {
		return "of unknown type"
	}
	return s
}
