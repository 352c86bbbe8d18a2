package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Errors of search.
var (
	// ErrNoSearchProvider: no provider is configured; web_search is left out of the tool list.
	ErrNoSearchProvider = errors.New("web: no search provider configured")
	// ErrBadQuery: an empty or oversized query.
	ErrBadQuery = errors.New("web: invalid search query")
	// ErrSearchFailed: the provider could not be reached or refused the request.
	ErrSearchFailed = errors.New("web: search failed")
)

const (
	// maxQueryChars is the longest query sent (Brave's limit; the others accept it too).
	maxQueryChars = 400
	// maxSnippetChars bounds one result's snippet.
	maxSnippetChars = 600
	// maxAPIResponse bounds what is read of a provider's answer.
	maxAPIResponse = 4 << 20
)

// SearchResult is one hit.
type SearchResult struct {
	Title   string `json:"title"`
	URL     string `json:"url"`
	Snippet string `json:"snippet"`
	// Published is the page's date as the provider gives it (free form), when known.
	Published string `json:"published,omitempty"`
}

// Provider is a search backend.
type Provider interface {
	// Name is the provider's name as configured (searxng, brave, tavily).
	Name() string
	// Search returns at most count results for query.
	Search(ctx context.Context, query string, count int) ([]SearchResult, error)
}

// Searcher runs web_search through one provider with the configured bounds.
type Searcher struct {
	provider   Provider
	maxResults int
	cfg        SearchConfig
}

// SearchResponse is what a search found.
type SearchResponse struct {
	Query    string         `json:"query"`
	Provider string         `json:"provider"`
	Results  []SearchResult `json:"results"`
}

// NewSearcher builds the configured provider. It returns ErrNoSearchProvider when none is
// configured (the tool is then left out), and ErrInvalidConfig when the configuration is
// contradictory (a provider chosen without its key or URL). client may be nil.
func NewSearcher(cfg SearchConfig, client *http.Client) (*Searcher, error) {
	cfg = cfg.withDefaults()
	if cfg.MaxResults < 1 || cfg.MaxResults > hardMaxResults {
		return nil, fmt.Errorf("%w: AGENTD_SEARCH_MAX_RESULTS=%d: must be between 1 and %d", ErrInvalidConfig, cfg.MaxResults, hardMaxResults)
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("%w: AGENTD_SEARCH_TIMEOUT=%s: must be positive", ErrInvalidConfig, cfg.Timeout)
	}
	if client == nil {
		client = &http.Client{}
	}
	name := strings.ToLower(strings.TrimSpace(cfg.Provider))
	if name == ProviderAuto {
		switch {
		case cfg.SearXNGURL != "":
			name = ProviderSearXNG
		case cfg.BraveAPIKey != "":
			name = ProviderBrave
		case cfg.TavilyAPIKey != "":
			name = ProviderTavily
		default:
			return nil, fmt.Errorf("%w (set SEARXNG_URL, BRAVE_API_KEY or TAVILY_API_KEY)", ErrNoSearchProvider)
		}
	}
	var p Provider
	switch name {
	case ProviderNone:
		return nil, fmt.Errorf("%w (AGENTD_SEARCH_PROVIDER=none)", ErrNoSearchProvider)
	case ProviderSearXNG:
		if cfg.SearXNGURL == "" {
			return nil, fmt.Errorf("%w: AGENTD_SEARCH_PROVIDER=searxng needs SEARXNG_URL", ErrInvalidConfig)
		}
		base, err := baseEndpoint("SEARXNG_URL", cfg.SearXNGURL)
		if err != nil {
			return nil, err
		}
		p = &SearXNG{BaseURL: base, Client: client}
	case ProviderBrave:
		if cfg.BraveAPIKey == "" {
			return nil, fmt.Errorf("%w: AGENTD_SEARCH_PROVIDER=brave needs BRAVE_API_KEY", ErrInvalidConfig)
		}
		base, err := baseEndpoint("BRAVE_BASE_URL", cfg.BraveBaseURL)
		if err != nil {
			return nil, err
		}
		p = &Brave{BaseURL: base, APIKey: cfg.BraveAPIKey, Client: client}
	case ProviderTavily:
		if cfg.TavilyAPIKey == "" {
			return nil, fmt.Errorf("%w: AGENTD_SEARCH_PROVIDER=tavily needs TAVILY_API_KEY", ErrInvalidConfig)
		}
		base, err := baseEndpoint("TAVILY_BASE_URL", cfg.TavilyBaseURL)
		if err != nil {
			return nil, err
		}
		p = &Tavily{BaseURL: base, APIKey: cfg.TavilyAPIKey, Client: client}
	default:
		return nil, fmt.Errorf("%w: AGENTD_SEARCH_PROVIDER=%q (want auto, searxng, brave, tavily or none)", ErrInvalidConfig, cfg.Provider)
	}
	return &Searcher{provider: p, maxResults: cfg.MaxResults, cfg: cfg}, nil
}

// NewSearcherWith wraps a provider of the caller's (another API, a test double).
func NewSearcherWith(p Provider, cfg SearchConfig) *Searcher {
	cfg = cfg.withDefaults()
	return &Searcher{provider: p, maxResults: min(max(cfg.MaxResults, 1), hardMaxResults), cfg: cfg}
}

// Provider names the provider in use.
func (s *Searcher) Provider() string { return s.provider.Name() }

// MaxResults is the most results one search returns.
func (s *Searcher) MaxResults() int { return s.maxResults }

// Search runs query, asking for count results (0 or more than the maximum means the maximum).
func (s *Searcher) Search(ctx context.Context, query string, count int) (*SearchResponse, error) {
	query = strings.Join(strings.Fields(query), " ")
	switch {
	case query == "":
		return nil, fmt.Errorf("%w: the query is empty", ErrBadQuery)
	case utf8.RuneCountInString(query) > maxQueryChars:
		return nil, fmt.Errorf("%w: the query has more than %d characters; search with fewer words", ErrBadQuery, maxQueryChars)
	}
	if count <= 0 || count > s.maxResults {
		count = s.maxResults
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	results, err := s.provider.Search(ctx, query, count)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s did not answer within %s", ErrSearchFailed, s.provider.Name(), s.cfg.Timeout)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	// Providers may return more than asked (SearXNG has no count), duplicates, or results
	// without a URL.
	seen := map[string]bool{}
	out := make([]SearchResult, 0, count)
	for _, r := range results {
		r.URL = strings.TrimSpace(r.URL)
		if r.URL == "" || seen[r.URL] {
			continue
		}
		seen[r.URL] = true
		r.Title = cleanText(r.Title, 300)
		r.Snippet = cleanText(r.Snippet, maxSnippetChars)
		if r.Title == "" {
			r.Title = r.URL
		}
		out = append(out, r)
		if len(out) == count {
			break
		}
	}
	return &SearchResponse{Query: query, Provider: s.provider.Name(), Results: out}, nil
}

// Report renders the results for the model: numbered, each with its URL to cite or fetch.
func (r *SearchResponse) Report() string {
	var b strings.Builder
	if len(r.Results) == 0 {
		fmt.Fprintf(&b, "No results for %q.", r.Query)
		return b.String()
	}
	fmt.Fprintf(&b, "Results for %q (%d):\n", r.Query, len(r.Results))
	for i, res := range r.Results {
		fmt.Fprintf(&b, "\n[%d] %s\n%s\n", i+1, res.Title, res.URL)
		if res.Published != "" {
			fmt.Fprintf(&b, "Published: %s\n", res.Published)
		}
		if res.Snippet != "" {
			fmt.Fprintf(&b, "%s\n", res.Snippet)
		}
	}
	b.WriteString("\nCite results by URL; read one in full with fetch_url.")
	return b.String()
}

var tags = regexp.MustCompile(`<[^>]*>`)

// cleanText strips markup some providers put in snippets (Brave's <strong> highlights), decodes
// entities, collapses whitespace and bounds the length.
func cleanText(s string, limit int) string {
	s = strings.Join(strings.Fields(html.UnescapeString(tags.ReplaceAllString(s, ""))), " ")
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit]) + "…"
	}
	return s
}

func baseEndpoint(name, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %s=%q is not an http(s) URL", ErrInvalidConfig, name, raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// endpoint joins base and path, keeping a base path (a SearXNG served under /searx).
func endpoint(base *url.URL, path string, query url.Values) string {
	u := *base
	u.Path = base.Path + path
	u.RawQuery = query.Encode()
	return u.String()
}

// doJSON sends req and decodes a 2xx JSON answer into out. Other answers become ErrSearchFailed
// with the provider's own message when it gives one, never the request's credentials.
func doJSON(client *http.Client, req *http.Request, provider string, out any) error {
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if req.Context().Err() != nil {
			return req.Context().Err()
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("%w: %s is unreachable: %v", ErrSearchFailed, provider, err) //nolint:errorlint // shown, not wrapped, as in fetch
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if err != nil {
		return fmt.Errorf("%w: reading %s's answer: %v", ErrSearchFailed, provider, err) //nolint:errorlint // shown, not wrapped, as in fetch
	}
	if resp.StatusCode/100 != 2 {
		msg := apiMessage(body)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			if msg == "" {
				msg = "the API key was refused"
			}
		case http.StatusForbidden:
			if msg == "" {
				msg = "access refused"
			}
		case http.StatusTooManyRequests:
			msg = strings.TrimSpace("rate limited; try again later. " + msg)
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &APIError{Provider: provider, Status: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s answered something that is not its JSON: %w", ErrSearchFailed, provider, err)
	}
	return nil
}

// APIError is a provider's refusal (an answer other than 2xx).
type APIError struct {
	Provider string
	Status   int
	// Message is the provider's own explanation when it gave one.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%v: %s answered HTTP %d: %s", ErrSearchFailed, e.Provider, e.Status, e.Message)
}

// Unwrap makes every APIError an ErrSearchFailed.
func (e *APIError) Unwrap() error { return ErrSearchFailed }

func errorsIsStatus(err error, status int) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == status
}

// apiMessage digs the human message out of the error bodies the providers send:
// {"detail": {"error": "…"}} (Tavily), {"error": {"detail": "…"}} (Brave), {"detail": "…"},
// {"error": "…"}, {"message": "…"}.
func apiMessage(body []byte) string {
	var v struct {
		Detail  json.RawMessage `json:"detail"`
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, raw := range []json.RawMessage{v.Detail, v.Error} {
		if len(raw) == 0 {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return cleanText(s, 300)
		}
		var obj struct {
			Error  string `json:"error"`
			Detail string `json:"detail"`
			Code   string `json:"code"`
		}
		if json.Unmarshal(raw, &obj) == nil {
			for _, m := range []string{obj.Detail, obj.Error, obj.Code} {
				if m != "" {
					return cleanText(m, 300)
				}
			}
		}
	}
	return cleanText(v.Message, 300)
}
