package web

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is wrapped by configuration errors.
var ErrInvalidConfig = errors.New("web: invalid configuration")

// Search providers AGENTD_SEARCH_PROVIDER accepts.
const (
	ProviderAuto    = "auto"
	ProviderSearXNG = "searxng"
	ProviderBrave   = "brave"
	ProviderTavily  = "tavily"
	ProviderNone    = "none"
)

// SearchConfig chooses and bounds the web_search provider. Its fields are environment variables
// (caarlos0/env tags), so agentd's config can embed it as it is.
type SearchConfig struct {
	// Provider is auto (the first configured of SearXNG, Brave, Tavily), searxng, brave, tavily or
	// none.
	Provider string `env:"AGENTD_SEARCH_PROVIDER" envDefault:"auto"`
	// SearXNGURL is the base URL of a SearXNG instance whose settings.yml enables the json format.
	SearXNGURL string `env:"SEARXNG_URL"`
	// BraveAPIKey is a Brave Search API subscription token.
	BraveAPIKey  string `env:"BRAVE_API_KEY" secret:"true"`
	BraveBaseURL string `env:"BRAVE_BASE_URL" envDefault:"https://api.search.brave.com"`
	// TavilyAPIKey is a Tavily API key (tvly-…).
	TavilyAPIKey  string `env:"TAVILY_API_KEY" secret:"true"`
	TavilyBaseURL string `env:"TAVILY_BASE_URL" envDefault:"https://api.tavily.com"`
	// MaxResults caps the results of one search (the model may ask for fewer).
	MaxResults int `env:"AGENTD_SEARCH_MAX_RESULTS" envDefault:"10"`
	// Timeout bounds one search request.
	Timeout time.Duration `env:"AGENTD_SEARCH_TIMEOUT" envDefault:"15s"`
}

// FetchConfig bounds fetch_url. Its fields are environment variables.
type FetchConfig struct {
	// Timeout bounds one fetch: connecting, every redirect and reading the body.
	Timeout time.Duration `env:"AGENTD_FETCH_TIMEOUT" envDefault:"20s"`
	// MaxBytes caps the body read (after decompression); a longer body is cut and marked so.
	MaxBytes int64 `env:"AGENTD_FETCH_MAX_BYTES" envDefault:"5242880"`
	// MaxRedirects is how many redirects a fetch follows.
	MaxRedirects int `env:"AGENTD_FETCH_MAX_REDIRECTS" envDefault:"5"`
	// MaxTextChars is how much readable text one call returns; the rest is read with an offset.
	MaxTextChars int `env:"AGENTD_FETCH_MAX_TEXT_CHARS" envDefault:"20000"`
	// Allow exempts addresses from the refusal of non-public ones: "ip:port" (exactly that
	// endpoint), an IP, or a CIDR prefix (an intranet the operator trusts). Empty in production.
	Allow []string `env:"AGENTD_FETCH_ALLOW" envSeparator:","`
	// UserAgent is sent with every request.
	UserAgent string `env:"AGENTD_FETCH_USER_AGENT" envDefault:"Mozilla/5.0 (compatible; mgx-agentd/1.0; fetch_url)"`
}

const (
	defaultSearchMaxResults = 10
	defaultSearchTimeout    = 15 * time.Second
	defaultBraveBaseURL     = "https://api.search.brave.com"
	defaultTavilyBaseURL    = "https://api.tavily.com"

	defaultFetchTimeout      = 20 * time.Second
	defaultFetchMaxBytes     = 5 << 20
	defaultFetchMaxRedirects = 5
	defaultFetchMaxText      = 20000
	defaultUserAgent         = "Mozilla/5.0 (compatible; mgx-agentd/1.0; fetch_url)"

	// hardMaxResults is what any provider returns at most per request (Brave's and Tavily's cap).
	hardMaxResults = 20
)

func (c SearchConfig) withDefaults() SearchConfig {
	if c.Provider == "" {
		c.Provider = ProviderAuto
	}
	if c.BraveBaseURL == "" {
		c.BraveBaseURL = defaultBraveBaseURL
	}
	if c.TavilyBaseURL == "" {
		c.TavilyBaseURL = defaultTavilyBaseURL
	}
	if c.MaxResults == 0 {
		c.MaxResults = defaultSearchMaxResults
	}
	if c.Timeout == 0 {
		c.Timeout = defaultSearchTimeout
	}
	return c
}

func (c FetchConfig) withDefaults() FetchConfig {
	if c.Timeout == 0 {
		c.Timeout = defaultFetchTimeout
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = defaultFetchMaxBytes
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = defaultFetchMaxRedirects
	}
	if c.MaxTextChars == 0 {
		c.MaxTextChars = defaultFetchMaxText
	}
	if c.UserAgent == "" {
		c.UserAgent = defaultUserAgent
	}
	return c
}

// Validate reports the first out-of-range field (after defaults).
func (c FetchConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Timeout < time.Second:
		return fmt.Errorf("%w: AGENTD_FETCH_TIMEOUT=%s: must be at least 1s", ErrInvalidConfig, c.Timeout)
	case c.MaxBytes < 1024:
		return fmt.Errorf("%w: AGENTD_FETCH_MAX_BYTES=%d: must be at least 1024", ErrInvalidConfig, c.MaxBytes)
	case c.MaxRedirects < 0 || c.MaxRedirects > 20:
		return fmt.Errorf("%w: AGENTD_FETCH_MAX_REDIRECTS=%d: must be between 0 and 20", ErrInvalidConfig, c.MaxRedirects)
	case c.MaxTextChars < 500:
		return fmt.Errorf("%w: AGENTD_FETCH_MAX_TEXT_CHARS=%d: must be at least 500", ErrInvalidConfig, c.MaxTextChars)
	}
	_, err := newGuard(c.Allow)
	return err
}
