package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// SearXNG queries a SearXNG instance's search API: GET /search?q=…&format=json. The instance must
// list json in search.formats of its settings.yml (it answers 403 otherwise). SearXNG has no
// result count; the Searcher keeps the first ones.
type SearXNG struct {
	BaseURL *url.URL
	Client  *http.Client
}

// Name implements Provider.
func (s *SearXNG) Name() string { return ProviderSearXNG }

// searxngResponse is the part of SearXNG's JSON answer used here.
type searxngResponse struct {
	Query   string `json:"query"`
	Results []struct {
		URL           string  `json:"url"`
		Title         string  `json:"title"`
		Content       string  `json:"content"`
		PublishedDate *string `json:"publishedDate"`
	} `json:"results"`
	UnresponsiveEngines [][]string `json:"unresponsive_engines"`
}

// Search implements Provider.
func (s *SearXNG) Search(ctx context.Context, query string, count int) ([]SearchResult, error) {
	q := url.Values{"q": {query}, "format": {"json"}, "pageno": {"1"}, "safesearch": {"1"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(s.BaseURL, "/search", q), nil)
	if err != nil {
		return nil, err
	}
	var out searxngResponse
	if err := doJSON(s.Client, req, "SearXNG", &out); err != nil {
		if errorsIsStatus(err, http.StatusForbidden) {
			return nil, fmt.Errorf("%w (the instance must enable the json format: search.formats in settings.yml)", err)
		}
		return nil, err
	}
	results := make([]SearchResult, 0, len(out.Results))
	for _, r := range out.Results {
		res := SearchResult{Title: r.Title, URL: r.URL, Snippet: r.Content}
		if r.PublishedDate != nil {
			res.Published = *r.PublishedDate
		}
		results = append(results, res)
	}
	return results, nil
}

// Brave queries the Brave Search API: GET /res/v1/web/search with the X-Subscription-Token header.
type Brave struct {
	BaseURL *url.URL
	APIKey  string
	Client  *http.Client
}

// Name implements Provider.
func (b *Brave) Name() string { return ProviderBrave }

// braveResponse is the part of Brave's WebSearchApiResponse used here.
type braveResponse struct {
	Type string `json:"type"`
	Web  *struct {
		Results []struct {
			Title         string   `json:"title"`
			URL           string   `json:"url"`
			Description   string   `json:"description"`
			Age           string   `json:"age"`
			PageAge       string   `json:"page_age"`
			ExtraSnippets []string `json:"extra_snippets"`
		} `json:"results"`
	} `json:"web"`
}

// Search implements Provider.
func (b *Brave) Search(ctx context.Context, query string, count int) ([]SearchResult, error) {
	q := url.Values{
		"q":                {query},
		"count":            {strconv.Itoa(min(count, hardMaxResults))},
		"result_filter":    {"web"},
		"text_decorations": {"false"},
		"safesearch":       {"moderate"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(b.BaseURL, "/res/v1/web/search", q), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Subscription-Token", b.APIKey)
	var out braveResponse
	if err := doJSON(b.Client, req, "Brave Search", &out); err != nil {
		return nil, err
	}
	if out.Web == nil {
		return nil, nil
	}
	results := make([]SearchResult, 0, len(out.Web.Results))
	for _, r := range out.Web.Results {
		snippet := r.Description
		if len(r.ExtraSnippets) > 0 {
			snippet += " … " + r.ExtraSnippets[0]
		}
		published := r.Age
		if published == "" {
			published = r.PageAge
		}
		results = append(results, SearchResult{Title: r.Title, URL: r.URL, Snippet: snippet, Published: published})
	}
	return results, nil
}

// Tavily queries Tavily's search API: POST /search with a JSON body. The key goes in the
// Authorization header (the current API) and in the body's api_key (what older deployments read).
type Tavily struct {
	BaseURL *url.URL
	APIKey  string
	Client  *http.Client
}

// Name implements Provider.
func (t *Tavily) Name() string { return ProviderTavily }

type tavilyRequest struct {
	APIKey            string `json:"api_key"`
	Query             string `json:"query"`
	MaxResults        int    `json:"max_results"`
	SearchDepth       string `json:"search_depth"`
	Topic             string `json:"topic"`
	IncludeAnswer     bool   `json:"include_answer"`
	IncludeRawContent bool   `json:"include_raw_content"`
	IncludeImages     bool   `json:"include_images"`
}

type tavilyResponse struct {
	Query   string `json:"query"`
	Results []struct {
		Title         string  `json:"title"`
		URL           string  `json:"url"`
		Content       string  `json:"content"`
		Score         float64 `json:"score"`
		PublishedDate string  `json:"published_date"`
	} `json:"results"`
}

// Search implements Provider.
func (t *Tavily) Search(ctx context.Context, query string, count int) ([]SearchResult, error) {
	body, err := json.Marshal(tavilyRequest{
		APIKey: t.APIKey, Query: query, MaxResults: min(count, hardMaxResults),
		SearchDepth: "basic", Topic: "general",
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint(t.BaseURL, "/search", nil), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.APIKey)
	var out tavilyResponse
	if err := doJSON(t.Client, req, "Tavily", &out); err != nil {
		return nil, err
	}
	results := make([]SearchResult, 0, len(out.Results))
	for _, r := range out.Results {
		results = append(results, SearchResult{Title: r.Title, URL: r.URL, Snippet: r.Content, Published: r.PublishedDate})
	}
	return results, nil
}
