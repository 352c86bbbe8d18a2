package agentclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// Changes returns what changed in the workspace after cursor ("" for the current position only),
// waiting up to waitMS for a change when there is none yet.
func (c *Client) Changes(ctx context.Context, cursor string, waitMS, limit int) (agentapi.Changes, error) {
	q := url.Values{"cursor": {cursor}}
	if waitMS > 0 {
		q.Set("wait_ms", strconv.Itoa(waitMS))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out agentapi.Changes
	err := c.do(ctx, http.MethodGet, agentapi.PathChanges, q, nil, &out)
	return out, err
}

// Search searches file contents.
func (c *Client) Search(ctx context.Context, req agentapi.SearchRequest) (agentapi.SearchResult, error) {
	var out agentapi.SearchResult
	err := c.do(ctx, http.MethodPost, agentapi.PathSearch, nil, req, &out)
	return out, err
}
