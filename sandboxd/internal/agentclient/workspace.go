package agentclient

import (
	"context"
	"errors"
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

// Marker reads the workspace's marker; ok is false when it has none.
func (c *Client) Marker(ctx context.Context) (m agentapi.Marker, ok bool, err error) {
	err = c.do(ctx, http.MethodGet, agentapi.PathMarker, nil, nil, &m)
	var ae *Error
	if errors.As(err, &ae) && ae.Code == agentapi.CodeNotFound {
		return agentapi.Marker{}, false, nil
	}
	return m, err == nil, err
}

// SetMarker writes the workspace's marker; the agent refuses (CodeExists) to replace one of another
// workspace or session.
func (c *Client) SetMarker(ctx context.Context, m agentapi.Marker) error {
	return c.do(ctx, http.MethodPut, agentapi.PathMarker, nil, m, nil)
}

// Sync flushes the workspace's file systems to stable storage.
func (c *Client) Sync(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, agentapi.PathSync, nil, nil, nil)
}

// Usage measures the workspace.
func (c *Client) Usage(ctx context.Context) (agentapi.Usage, error) {
	var u agentapi.Usage
	err := c.do(ctx, http.MethodGet, agentapi.PathUsage, nil, nil, &u)
	return u, err
}

// CreateCheckpoint snapshots the workspace.
func (c *Client) CreateCheckpoint(ctx context.Context, req agentapi.CheckpointRequest) (agentapi.CheckpointResult, error) {
	var out agentapi.CheckpointResult
	err := c.do(ctx, http.MethodPost, agentapi.PathCheckpoints, nil, req, &out)
	return out, err
}

// ListCheckpoints lists checkpoints, newest first.
func (c *Client) ListCheckpoints(ctx context.Context, limit int, before string) (agentapi.CheckpointList, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}, "before": {before}}
	var out agentapi.CheckpointList
	err := c.do(ctx, http.MethodGet, agentapi.PathCheckpoints, q, nil, &out)
	return out, err
}

// DiffCheckpoint compares a checkpoint with another or with now.
func (c *Client) DiffCheckpoint(ctx context.Context, req agentapi.CheckpointDiffRequest) (agentapi.CheckpointDiff, error) {
	var out agentapi.CheckpointDiff
	err := c.do(ctx, http.MethodPost, agentapi.PathCheckpointDiff, nil, req, &out)
	return out, err
}

// RestoreCheckpoint restores a checkpoint, or one path of it.
func (c *Client) RestoreCheckpoint(ctx context.Context, req agentapi.CheckpointRestoreRequest) (agentapi.CheckpointRestoreResult, error) {
	var out agentapi.CheckpointRestoreResult
	err := c.do(ctx, http.MethodPost, agentapi.PathCheckpointRestore, nil, req, &out)
	return out, err
}
