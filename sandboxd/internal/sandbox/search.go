package sandbox

import (
	"context"
	"fmt"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Changes returns what changed in the workspace after cursor ("" for the current position), waiting
// up to waitMS for a change.
func (m *Manager) Changes(ctx context.Context, userID, sessionID, cursor string, waitMS, limit int) (Changes, error) {
	var out Changes
	err := m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		out, err = c.Changes(ctx, cursor, waitMS, limit)
		return err
	})
	return out, err
}

// SearchSpec is one content search.
type SearchSpec struct {
	Root          string
	Pattern       string
	IgnoreCase    bool
	Glob          string
	Prune         []string
	IncludeHidden bool
	MaxMatches    int
}

// Search searches file contents of the workspace.
func (m *Manager) Search(ctx context.Context, userID, sessionID string, spec SearchSpec) (SearchResult, error) {
	rel, err := cleanPath(spec.Root)
	if err != nil {
		return SearchResult{}, err
	}
	if spec.Pattern == "" {
		return SearchResult{}, fmt.Errorf("%w: empty pattern", ErrInvalidArgument)
	}
	var out SearchResult
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		out, err = c.Search(ctx, agentapi.SearchRequest{Root: rel, Pattern: spec.Pattern, IgnoreCase: spec.IgnoreCase,
			Glob: spec.Glob, Prune: spec.Prune, IncludeHidden: spec.IncludeHidden, MaxMatches: spec.MaxMatches})
		return err
	})
	return out, err
}
