package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/config"
)

// The fakes below answer with the providers' documented JSON shapes (trimmed to realistic sizes),
// and assert the requests the providers document.

const searxngAnswer = `{
  "query": "golang context cancellation",
  "number_of_results": 0,
  "results": [
    {"url": "https://pkg.go.dev/context", "title": "context package - context - Go Packages",
     "content": "Package context defines the Context type, which carries deadlines, cancellation signals, and other request-scoped values.",
     "engine": "duckduckgo", "parsed_url": ["https", "pkg.go.dev", "/context", "", "", ""], "template": "default.html",
     "engines": ["duckduckgo", "brave"], "positions": [1, 2], "score": 4.0, "category": "general", "publishedDate": null},
    {"url": "https://go.dev/blog/context", "title": "Go Concurrency Patterns: Context - The Go Programming Language",
     "content": "In Go servers, each incoming request is handled in its own goroutine.",
     "engine": "brave", "parsed_url": ["https", "go.dev", "/blog/context", "", "", ""], "template": "default.html",
     "engines": ["brave"], "positions": [2], "score": 1.5, "category": "general", "publishedDate": "2014-07-29T00:00:00"},
    {"url": "https://pkg.go.dev/context", "title": "duplicate", "content": "", "engine": "qwant", "engines": ["qwant"], "score": 0.5, "category": "general"},
    {"url": "https://www.digitalocean.com/community/tutorials/how-to-use-contexts-in-go", "title": "How To Use Contexts in Go &amp; more",
     "content": "Learn how to use &lt;context&gt; in Go.", "engine": "google", "engines": ["google"], "score": 1.0, "category": "general"}
  ],
  "answers": [], "corrections": [], "infoboxes": [], "suggestions": ["golang context timeout"],
  "unresponsive_engines": [["wikipedia", "timeout"]]
}`

const braveAnswer = `{
  "type": "search",
  "query": {"original": "golang context cancellation", "show_strict_warning": false, "is_navigational": false,
            "is_news_breaking": false, "spellcheck_off": true, "country": "us", "bad_results": false,
            "should_fallback": false, "postal_code": "", "city": "", "header_country": "", "more_results_available": true, "state": ""},
  "mixed": {"type": "mixed", "main": [{"type": "web", "index": 0, "all": false}], "top": [], "side": []},
  "web": {
    "type": "search",
    "results": [
      {"type": "search_result", "title": "context package - context - Go Packages", "url": "https://pkg.go.dev/context",
       "is_source_local": false, "is_source_both": false,
       "description": "Package <strong>context</strong> defines the Context type, which carries deadlines, <strong>cancellation</strong> signals.",
       "page_age": "2024-02-06T00:00:00", "profile": {"name": "Go Packages", "url": "https://pkg.go.dev/context", "long_name": "pkg.go.dev", "img": "https://imgs.search.brave.com/x"},
       "language": "en", "family_friendly": true, "subtype": "generic",
       "meta_url": {"scheme": "https", "netloc": "pkg.go.dev", "hostname": "pkg.go.dev", "favicon": "https://imgs.search.brave.com/y", "path": "› context"},
       "extra_snippets": ["A Context carries a deadline, a cancellation signal, and other values across API boundaries."]},
      {"type": "search_result", "title": "Go Concurrency Patterns: Context", "url": "https://go.dev/blog/context",
       "description": "In Go servers, each incoming request is handled in its own goroutine.", "age": "July 29, 2014",
       "language": "en", "family_friendly": true, "subtype": "generic"}
    ],
    "family_friendly": true
  }
}`

const tavilyAnswer = `{
  "query": "golang context cancellation",
  "follow_up_questions": null,
  "answer": null,
  "images": [],
  "results": [
    {"url": "https://pkg.go.dev/context", "title": "context package - context - Go Packages",
     "content": "Package context defines the Context type, which carries deadlines, cancellation signals, and other request-scoped values across API boundaries and between processes.",
     "score": 0.86, "raw_content": null},
    {"url": "https://go.dev/blog/context", "title": "Go Concurrency Patterns: Context",
     "content": "In Go servers, each incoming request is handled in its own goroutine.", "score": 0.71, "raw_content": null,
     "published_date": "2014-07-29"}
  ],
  "response_time": 1.67,
  "request_id": "123e4567-e89b-12d3-a456-426614174111"
}`

func TestSearchProviders(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(url string) SearchConfig
		handler func(t *testing.T) http.HandlerFunc
		want    []SearchResult
	}{
		{
			name: "searxng",
			cfg:  func(u string) SearchConfig { return SearchConfig{SearXNGURL: u + "/searx/"} },
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					require.Equal(t, http.MethodGet, r.Method)
					require.Equal(t, "/searx/search", r.URL.Path, "a base path is kept")
					require.Equal(t, "golang context cancellation", r.URL.Query().Get("q"))
					require.Equal(t, "json", r.URL.Query().Get("format"))
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, searxngAnswer)
				}
			},
			want: []SearchResult{
				{Title: "context package - context - Go Packages", URL: "https://pkg.go.dev/context", Snippet: "Package context defines the Context type, which carries deadlines, cancellation signals, and other request-scoped values."},
				{Title: "Go Concurrency Patterns: Context - The Go Programming Language", URL: "https://go.dev/blog/context", Snippet: "In Go servers, each incoming request is handled in its own goroutine.", Published: "2014-07-29T00:00:00"},
				{Title: "How To Use Contexts in Go & more", URL: "https://www.digitalocean.com/community/tutorials/how-to-use-contexts-in-go", Snippet: "Learn how to use <context> in Go."},
			},
		},
		{
			name: "brave",
			cfg:  func(u string) SearchConfig { return SearchConfig{BraveAPIKey: "brave-key", BraveBaseURL: u} },
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					require.Equal(t, http.MethodGet, r.Method)
					require.Equal(t, "/res/v1/web/search", r.URL.Path)
					require.Equal(t, "brave-key", r.Header.Get("X-Subscription-Token"))
					require.Equal(t, "application/json", r.Header.Get("Accept"))
					require.Equal(t, "golang context cancellation", r.URL.Query().Get("q"))
					require.Equal(t, "5", r.URL.Query().Get("count"))
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, braveAnswer)
				}
			},
			want: []SearchResult{
				{Title: "context package - context - Go Packages", URL: "https://pkg.go.dev/context", Published: "2024-02-06T00:00:00",
					Snippet: "Package context defines the Context type, which carries deadlines, cancellation signals. … A Context carries a deadline, a cancellation signal, and other values across API boundaries."},
				{Title: "Go Concurrency Patterns: Context", URL: "https://go.dev/blog/context", Published: "July 29, 2014", Snippet: "In Go servers, each incoming request is handled in its own goroutine."},
			},
		},
		{
			name: "tavily",
			cfg:  func(u string) SearchConfig { return SearchConfig{TavilyAPIKey: "tvly-key", TavilyBaseURL: u} },
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					require.Equal(t, http.MethodPost, r.Method)
					require.Equal(t, "/search", r.URL.Path)
					require.Equal(t, "Bearer tvly-key", r.Header.Get("Authorization"))
					require.Equal(t, "application/json", r.Header.Get("Content-Type"))
					var body map[string]any
					require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
					require.Equal(t, "golang context cancellation", body["query"])
					require.Equal(t, "tvly-key", body["api_key"])
					require.EqualValues(t, 5, body["max_results"])
					require.Equal(t, "basic", body["search_depth"])
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, tavilyAnswer)
				}
			},
			want: []SearchResult{
				{Title: "context package - context - Go Packages", URL: "https://pkg.go.dev/context", Snippet: "Package context defines the Context type, which carries deadlines, cancellation signals, and other request-scoped values across API boundaries and between processes."},
				{Title: "Go Concurrency Patterns: Context", URL: "https://go.dev/blog/context", Snippet: "In Go servers, each incoming request is handled in its own goroutine.", Published: "2014-07-29"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler(t))
			t.Cleanup(srv.Close)
			s, err := NewSearcher(tt.cfg(srv.URL), nil)
			require.NoError(t, err)
			require.Equal(t, tt.name, s.Provider())
			resp, err := s.Search(t.Context(), "  golang   context cancellation ", 5)
			require.NoError(t, err)
			require.Equal(t, tt.want, resp.Results)
			require.Equal(t, tt.name, resp.Provider)

			report := resp.Report()
			require.Contains(t, report, `Results for "golang context cancellation"`)
			require.Contains(t, report, "[1] context package - context - Go Packages\nhttps://pkg.go.dev/context\n")
			require.Contains(t, report, "read one in full with fetch_url")
		})
	}
}

func TestSearchBoundsTheResults(t *testing.T) {
	var results []map[string]any
	for i := range 30 {
		results = append(results, map[string]any{"url": "https://example.com/" + string(rune('a'+i%26)) + strings.Repeat("x", i), "title": "r", "content": strings.Repeat("long snippet ", 200)})
	}
	body, err := json.Marshal(map[string]any{"query": "q", "results": results})
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	t.Cleanup(srv.Close)

	s, err := NewSearcher(SearchConfig{SearXNGURL: srv.URL, MaxResults: 8}, nil)
	require.NoError(t, err)
	for _, asked := range []int{0, 100} {
		resp, err := s.Search(t.Context(), "q", asked)
		require.NoError(t, err)
		require.Len(t, resp.Results, 8, "at most AGENTD_SEARCH_MAX_RESULTS")
	}
	resp, err := s.Search(t.Context(), "q", 3)
	require.NoError(t, err)
	require.Len(t, resp.Results, 3)
	require.LessOrEqual(t, len([]rune(resp.Results[0].Snippet)), maxSnippetChars+1)
}

func TestSearchErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(url string) SearchConfig
		status  int
		body    string
		delay   time.Duration
		wantErr error
		want    string
	}{
		{name: "searxng without json format", cfg: func(u string) SearchConfig { return SearchConfig{SearXNGURL: u} },
			status: 403, body: "<html>403 Forbidden</html>", wantErr: ErrSearchFailed,
			want: "SearXNG answered HTTP 403: access refused (the instance must enable the json format: search.formats in settings.yml)"},
		{name: "brave bad key", cfg: func(u string) SearchConfig { return SearchConfig{BraveAPIKey: "wrong-key", BraveBaseURL: u} },
			status: 401, body: `{"type":"ErrorResponse","error":{"id":"e1","status":401,"code":"SUBSCRIPTION_TOKEN_INVALID","detail":"The provided subscription token is invalid.","meta":{}},"time":1}`,
			wantErr: ErrSearchFailed, want: "Brave Search answered HTTP 401: The provided subscription token is invalid."},
		{name: "brave rate limited", cfg: func(u string) SearchConfig { return SearchConfig{BraveAPIKey: "k", BraveBaseURL: u} },
			status: 429, body: `{"type":"ErrorResponse","error":{"code":"RATE_LIMITED","detail":"Request rate limit exceeded for plan.","status":429}}`,
			wantErr: ErrSearchFailed, want: "HTTP 429: rate limited; try again later. Request rate limit exceeded for plan."},
		{name: "tavily bad key", cfg: func(u string) SearchConfig { return SearchConfig{TavilyAPIKey: "tvly-wrong", TavilyBaseURL: u} },
			status: 401, body: `{"detail":{"error":"Unauthorized: missing or invalid API key."}}`,
			wantErr: ErrSearchFailed, want: "Tavily answered HTTP 401: Unauthorized: missing or invalid API key."},
		{name: "server error without body", cfg: func(u string) SearchConfig { return SearchConfig{TavilyAPIKey: "k", TavilyBaseURL: u} },
			status: 502, wantErr: ErrSearchFailed, want: "Tavily answered HTTP 502: Bad Gateway"},
		{name: "not json", cfg: func(u string) SearchConfig { return SearchConfig{SearXNGURL: u} },
			status: 200, body: "<html>hello</html>", wantErr: ErrSearchFailed, want: "not its JSON"},
		{name: "too slow", cfg: func(u string) SearchConfig { return SearchConfig{SearXNGURL: u, Timeout: 300 * time.Millisecond} },
			status: 200, delay: 2 * time.Second, wantErr: ErrSearchFailed, want: "searxng did not answer within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.delay > 0 {
					select {
					case <-time.After(tt.delay):
					case <-r.Context().Done():
					}
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			s, err := NewSearcher(tt.cfg(srv.URL), nil)
			require.NoError(t, err)
			_, err = s.Search(t.Context(), "anything", 3)
			require.ErrorIs(t, err, tt.wantErr)
			require.Contains(t, err.Error(), tt.want)
			require.NotContains(t, err.Error(), "wrong-key")
			require.NotContains(t, err.Error(), "tvly-wrong")
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		s, err := NewSearcher(SearchConfig{SearXNGURL: srv.URL}, nil)
		require.NoError(t, err)
		_, err = s.Search(t.Context(), "q", 1)
		require.ErrorIs(t, err, ErrSearchFailed)
		require.Contains(t, err.Error(), "SearXNG is unreachable")
	})
	t.Run("bad queries", func(t *testing.T) {
		s, err := NewSearcher(SearchConfig{SearXNGURL: "http://127.0.0.1:1"}, nil)
		require.NoError(t, err)
		for _, q := range []string{"", "   \n\t", strings.Repeat("word ", 100)} {
			_, err := s.Search(t.Context(), q, 1)
			require.ErrorIs(t, err, ErrBadQuery)
		}
	})
}

func TestNewSearcher(t *testing.T) {
	tests := []struct {
		name     string
		cfg      SearchConfig
		provider string
		wantErr  error
	}{
		{name: "nothing configured", cfg: SearchConfig{}, wantErr: ErrNoSearchProvider},
		{name: "none", cfg: SearchConfig{Provider: "none", BraveAPIKey: "k"}, wantErr: ErrNoSearchProvider},
		{name: "auto prefers searxng", cfg: SearchConfig{SearXNGURL: "http://searxng:8080", BraveAPIKey: "k", TavilyAPIKey: "t"}, provider: ProviderSearXNG},
		{name: "auto then brave", cfg: SearchConfig{BraveAPIKey: "k", TavilyAPIKey: "t"}, provider: ProviderBrave},
		{name: "auto then tavily", cfg: SearchConfig{TavilyAPIKey: "t"}, provider: ProviderTavily},
		{name: "explicit choice", cfg: SearchConfig{Provider: "Tavily", BraveAPIKey: "k", TavilyAPIKey: "t"}, provider: ProviderTavily},
		{name: "explicit without key", cfg: SearchConfig{Provider: "brave", TavilyAPIKey: "t"}, wantErr: ErrInvalidConfig},
		{name: "explicit searxng without url", cfg: SearchConfig{Provider: "searxng"}, wantErr: ErrInvalidConfig},
		{name: "unknown provider", cfg: SearchConfig{Provider: "bing", BraveAPIKey: "k"}, wantErr: ErrInvalidConfig},
		{name: "bad searxng url", cfg: SearchConfig{SearXNGURL: "searxng:8080"}, wantErr: ErrInvalidConfig},
		{name: "too many results", cfg: SearchConfig{BraveAPIKey: "k", MaxResults: 50}, wantErr: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSearcher(tt.cfg, nil)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.provider, s.Provider())
		})
	}
}

// agentd embeds the configs in its own; they must load from the environment as they are.
func TestConfigFromEnvironment(t *testing.T) {
	type service struct {
		Search SearchConfig
		Fetch  FetchConfig
	}
	cfg, err := config.LoadFrom[service](nil)
	require.NoError(t, err)
	require.Equal(t, SearchConfig{}.withDefaults(), cfg.Search, "the env defaults are the code defaults")
	require.Equal(t, FetchConfig{}.withDefaults(), cfg.Fetch)
	_, err = NewSearcher(cfg.Search, nil)
	require.ErrorIs(t, err, ErrNoSearchProvider)

	cfg, err = config.LoadFrom[service](map[string]string{
		"AGENTD_SEARCH_PROVIDER":    "brave",
		"BRAVE_API_KEY":             "k",
		"AGENTD_SEARCH_MAX_RESULTS": "5",
		"AGENTD_FETCH_ALLOW":        "10.1.0.0/16,127.0.0.1:8080",
		"AGENTD_FETCH_MAX_BYTES":    "1048576",
	})
	require.NoError(t, err)
	s, err := NewSearcher(cfg.Search, nil)
	require.NoError(t, err)
	require.Equal(t, ProviderBrave, s.Provider())
	require.Equal(t, 5, s.MaxResults())
	require.Equal(t, []string{"10.1.0.0/16", "127.0.0.1:8080"}, cfg.Fetch.Allow)
	require.Equal(t, int64(1<<20), cfg.Fetch.MaxBytes)
	_, err = NewFetcher(cfg.Fetch)
	require.NoError(t, err)
}
