package server

import (
	"context"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
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
