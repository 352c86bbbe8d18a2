package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
)

// GetWorkspace implements WorkspaceService.
func (s *Server) GetWorkspace(ctx context.Context, req *sandboxdv1.GetWorkspaceRequest) (*sandboxdv1.GetWorkspaceResponse, error) {
	w, err := s.m.GetWorkspace(ctx, user(ctx), req.GetSessionId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.GetWorkspaceResponse{Workspace: &sandboxdv1.Workspace{
		SessionId: w.SessionID, State: w.State, Volume: w.Volume,
		SizeBytes: w.Usage.Bytes, Files: w.Usage.Files, HistoryBytes: w.Usage.MetaBytes, Partial: w.Usage.Partial,
		Measured: w.Measured, LimitBytes: w.Limit, LimitEnforced: w.LimitEnforced,
	}}, nil
}

// ResetWorkspace implements WorkspaceService.
func (s *Server) ResetWorkspace(ctx context.Context, req *sandboxdv1.ResetWorkspaceRequest) (*sandboxdv1.ResetWorkspaceResponse, error) {
	sb, logs, err := s.m.ResetWorkspace(ctx, user(ctx), req.GetSessionId(), req.GetAdopt())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.ResetWorkspaceResponse{Sandbox: toSandbox(sb), Logs: logs}, nil
}

func toCheckpoint(c sandbox.Checkpoint) *sandboxdv1.Checkpoint {
	return &sandboxdv1.Checkpoint{
		Id: c.ID, CreatedAt: timestamppb.New(c.Created), Agent: c.Agent, RunId: c.RunID, Step: c.Step,
		Message: c.Message, Kind: c.Kind, FilesChanged: int32(c.FilesChanged), ParentId: c.Parent,
	}
}

// CreateCheckpoint implements WorkspaceService.
func (s *Server) CreateCheckpoint(ctx context.Context, req *sandboxdv1.CreateCheckpointRequest) (*sandboxdv1.CreateCheckpointResponse, error) {
	info := sandbox.CheckpointInfo{Message: req.GetMessage(), Agent: req.GetAgent(), RunID: req.GetRunId(), Step: req.GetStep()}
	if req.GetAgent() != "" || req.GetStep() != "" {
		info.Kind = sandbox.CheckpointStep
	}
	cp, created, err := s.m.CreateCheckpoint(ctx, user(ctx), req.GetSessionId(), info)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.CreateCheckpointResponse{Checkpoint: toCheckpoint(cp), Created: created}, nil
}

// ListCheckpoints implements WorkspaceService.
func (s *Server) ListCheckpoints(ctx context.Context, req *sandboxdv1.ListCheckpointsRequest) (*sandboxdv1.ListCheckpointsResponse, error) {
	list, more, err := s.m.ListCheckpoints(ctx, user(ctx), req.GetSessionId(), int(req.GetLimit()), req.GetBefore())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.ListCheckpointsResponse{More: more, Checkpoints: make([]*sandboxdv1.Checkpoint, 0, len(list))}
	for _, c := range list {
		out.Checkpoints = append(out.Checkpoints, toCheckpoint(c))
	}
	return out, nil
}

// DiffCheckpoint implements WorkspaceService.
func (s *Server) DiffCheckpoint(ctx context.Context, req *sandboxdv1.DiffCheckpointRequest) (*sandboxdv1.DiffCheckpointResponse, error) {
	d, err := s.m.DiffCheckpoint(ctx, user(ctx), req.GetSessionId(), req.GetCheckpointId(), req.GetAgainst(), req.GetPath())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.DiffCheckpointResponse{CheckpointId: req.GetCheckpointId(), Against: req.GetAgainst(), Truncated: d.Truncated,
		Files: make([]*sandboxdv1.FileDiff, 0, len(d.Files))}
	for _, f := range d.Files {
		out.Files = append(out.Files, &sandboxdv1.FileDiff{Path: f.Path, Status: f.Status, Diff: f.Diff, Binary: f.Binary, Truncated: f.Truncated})
	}
	return out, nil
}

// RestoreCheckpoint implements WorkspaceService.
func (s *Server) RestoreCheckpoint(ctx context.Context, req *sandboxdv1.RestoreCheckpointRequest) (*sandboxdv1.RestoreCheckpointResponse, error) {
	before, n, err := s.m.RestoreCheckpoint(ctx, user(ctx), req.GetSessionId(), req.GetCheckpointId(), req.GetPath())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &sandboxdv1.RestoreCheckpointResponse{Before: toCheckpoint(before), FilesChanged: int32(n)}, nil
}
