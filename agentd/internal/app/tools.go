package app

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"

	"github.com/mgx-ai/mgx/agentd/internal/browser"
	"github.com/mgx-ai/mgx/agentd/internal/config"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
	"github.com/mgx-ai/mgx/agentd/internal/web"
)

// toolExecutor starts the engines of the tools that run in agentd — the shared headless browser of
// preview_check, web_search's provider, fetch_url's fetcher — and returns the executor of every
// tool. An engine that is absent here (no chromium, no search provider configured) leaves its tool
// out, and says so in the log; one configured wrongly fails the start.
func (a *App) toolExecutor(cfg config.Config, cc grpc.ClientConnInterface, st *store.Store) (*tools.Executor, error) {
	opts := tools.Options{PreviewURL: cfg.PreviewURL, Artifacts: st, Logger: a.log, Unavailable: map[string]string{}}
	if cfg.PreviewURL != "" && !tools.IsLoopbackURL(cfg.PreviewURL) {
		relay, err := tools.StartPreviewRelay(cfg.PreviewURL, a.log)
		if err != nil {
			return nil, fmt.Errorf("agentd: %w", err)
		}
		a.life.Push("preview relay", relay.Close)
		opts.PreviewURL = relay.URL()
	}
	b, err := browser.New(cfg.Browser, a.log)
	switch {
	case err == nil:
		opts.Browser = b
		a.life.Push("browser", func(context.Context) error { return b.Close() })
		a.log.Info("preview_check: headless chromium is ready", "pid", b.PID(), "path", cfg.Browser.ExecPath)
	case errors.Is(err, browser.ErrUnavailable):
		opts.Unavailable[tools.PreviewCheck] = err.Error()
	default:
		return nil, fmt.Errorf("agentd: %w", err)
	}
	searcher, err := web.NewSearcher(cfg.Search, nil)
	switch {
	case err == nil:
		opts.Searcher = searcher
		a.log.Info("web_search: provider configured", "provider", searcher.Provider(), "max_results", searcher.MaxResults())
	case errors.Is(err, web.ErrNoSearchProvider):
		opts.Unavailable[tools.WebSearch] = err.Error()
	default:
		return nil, fmt.Errorf("agentd: %w", err)
	}
	fetcher, err := web.NewFetcher(cfg.Fetch)
	if err != nil {
		return nil, fmt.Errorf("agentd: %w", err)
	}
	opts.Fetcher = fetcher
	x := tools.NewExecutor(cc, opts)
	for _, name := range x.UnavailableNames() {
		a.log.Warn("tool unavailable: left out of every agent's tool list", "tool", name, "why", x.Unavailable()[name])
	}
	return x, nil
}
