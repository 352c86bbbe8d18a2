package sandbox

import (
	"context"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/checkpoint"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Checkpoints are snapshots of the session's whole workspace kept in its meta volume (package
// checkpoint), so they share the workspace's fate: they survive reaping and restarts, and go with
// the session. Every call reaches the session's sandbox (re-creating it when it was reaped), since
// only the agent sees the volumes.

type (
	Checkpoint     = agentapi.Checkpoint
	CheckpointDiff = agentapi.CheckpointDiff
	FileDiff       = checkpoint.FileDiff
)

// Checkpoint kinds.
const (
	CheckpointStep          = checkpoint.KindStep
	CheckpointManual        = checkpoint.KindManual
	CheckpointBeforeRestore = checkpoint.KindBeforeRestore
)

// CheckpointInfo says who asks for a checkpoint and why.
type CheckpointInfo struct {
	// Kind is CheckpointStep (an agent's step changed files) or CheckpointManual.
	Kind                        string
	Message, Agent, RunID, Step string
}

// CreateCheckpoint snapshots the session's workspace. When nothing changed since the latest
// checkpoint, that one is returned with created false.
func (m *Manager) CreateCheckpoint(ctx context.Context, userID, sessionID string, info CheckpointInfo) (cp Checkpoint, created bool, err error) {
	if info.Kind != CheckpointStep {
		info.Kind = CheckpointManual
	}
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) error {
		res, err := c.CreateCheckpoint(ctx, agentapi.CheckpointRequest{Kind: info.Kind, Message: info.Message, Agent: info.Agent,
			RunID: info.RunID, Step: info.Step, Exclude: m.opts.CheckpointExclude, Keep: m.opts.CheckpointKeep})
		cp, created = res.Checkpoint, res.Created
		return err
	})
	return cp, created, err
}

// ListCheckpoints lists the workspace's checkpoints, newest first (limit 1..500, default 50), older
// than before when it is set.
func (m *Manager) ListCheckpoints(ctx context.Context, userID, sessionID string, limit int, before string) (list []Checkpoint, more bool, err error) {
	if before != "" && !checkpoint.ValidID(before) {
		return nil, false, ErrCheckpointNotFound
	}
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) error {
		res, err := c.ListCheckpoints(ctx, limit, before)
		list, more = res.Checkpoints, res.More
		return err
	})
	return list, more, err
}

// DiffCheckpoint compares checkpoint id with checkpoint against, or with the workspace now when
// against is empty, within path (a file or directory; "" for everything).
func (m *Manager) DiffCheckpoint(ctx context.Context, userID, sessionID, id, against, path string) (CheckpointDiff, error) {
	if !checkpoint.ValidID(id) || (against != "" && !checkpoint.ValidID(against)) {
		return CheckpointDiff{}, ErrCheckpointNotFound
	}
	rel, err := cleanPath(path)
	if err != nil {
		return CheckpointDiff{}, err
	}
	var d CheckpointDiff
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		d, err = c.DiffCheckpoint(ctx, agentapi.CheckpointDiffRequest{ID: id, Against: against, Path: rel, Exclude: m.opts.CheckpointExclude})
		return err
	})
	return d, err
}

// RestoreCheckpoint puts the workspace (or path within it) back as checkpoint id holds it, after
// checkpointing the current state (before), so the restore can be undone.
func (m *Manager) RestoreCheckpoint(ctx context.Context, userID, sessionID, id, path string) (before Checkpoint, changed int, err error) {
	if !checkpoint.ValidID(id) {
		return Checkpoint{}, 0, ErrCheckpointNotFound
	}
	rel, err := cleanPath(path)
	if err != nil {
		return Checkpoint{}, 0, err
	}
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) error {
		res, err := c.RestoreCheckpoint(ctx, agentapi.CheckpointRestoreRequest{ID: id, Path: rel,
			Exclude: m.opts.CheckpointExclude, Keep: m.opts.CheckpointKeep})
		before, changed = res.Before, res.FilesChanged
		return err
	})
	return before, changed, err
}
