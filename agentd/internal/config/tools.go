package config

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/mgx-ai/mgx/agentd/internal/web"
)

// ErrInvalidURL is wrapped by a malformed URL setting.
var ErrInvalidURL = errors.New("must be an http(s) URL")

// validateTools checks the settings of the tools that run in agentd. A search provider that is not
// configured is not an error (web_search is left out); one configured wrongly is.
func (c *Config) validateTools() error {
	if err := c.Browser.Validate(); err != nil {
		return err
	}
	if err := c.Fetch.Validate(); err != nil {
		return err
	}
	if c.PreviewURL != "" {
		u, err := url.Parse(c.PreviewURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("SANDBOXD_PREVIEW_URL=%q: %w", c.PreviewURL, ErrInvalidURL)
		}
	}
	if _, err := web.NewSearcher(c.Search, nil); err != nil && !errors.Is(err, web.ErrNoSearchProvider) {
		return err
	}
	return nil
}
