package server

import (
	"context"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
)

// SearchFiles implements FileService.
func (s *Server) SearchFiles(ctx context.Context, req *sandboxdv1.SearchFilesRequest) (*sandboxdv1.SearchFilesResponse, error) {
	res, err := s.m.Search(ctx, user(ctx), req.GetSessionId(), sandbox.SearchSpec{
		Root: req.GetPath(), Pattern: req.GetPattern(), IgnoreCase: req.GetIgnoreCase(), Glob: req.GetGlob(),
		Prune: req.GetPrune(), IncludeHidden: req.GetIncludeHidden(), MaxMatches: int(req.GetMaxMatches()),
	})
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.SearchFilesResponse{Matches: make([]*sandboxdv1.SearchMatch, 0, len(res.Matches)), Truncated: res.Truncated,
		FilesSearched: int32(res.FilesSearched), FilesSkipped: int32(res.FilesSkipped)}
	for _, m := range res.Matches {
		out.Matches = append(out.Matches, &sandboxdv1.SearchMatch{Path: m.Path, Line: int32(m.Line), Text: m.Text, Cut: m.Cut})
	}
	return out, nil
}

// ListChanges implements FileService.
func (s *Server) ListChanges(ctx context.Context, req *sandboxdv1.ListChangesRequest) (*sandboxdv1.ListChangesResponse, error) {
	res, err := s.m.Changes(ctx, user(ctx), req.GetSessionId(), req.GetCursor(), int(req.GetWaitMs()), int(req.GetLimit()))
	if err != nil {
		return nil, s.err(ctx, err)
	}
	out := &sandboxdv1.ListChangesResponse{Cursor: res.Cursor, Incomplete: res.Reset, Truncated: res.Truncated, Mode: res.Mode,
		Changes: make([]*sandboxdv1.FileChange, 0, len(res.Changes))}
	for _, c := range res.Changes {
		out.Changes = append(out.Changes, &sandboxdv1.FileChange{Path: c.Path, Kind: c.Kind, Directory: c.Dir})
	}
	return out, nil
}
