package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"

	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
)

// Artifacts are what the artifact service reads.
type Artifacts interface {
	ListArtifacts(ctx context.Context, ownerID, sessionID string) ([]store.Artifact, error)
	GetArtifact(ctx context.Context, ownerID, sessionID, id string) (store.Artifact, []byte, error)
}

// artifactServer implements ArtifactService: the session owner's screenshots and charts.
type artifactServer struct {
	agentdv1.UnimplementedArtifactServiceServer
	store Artifacts
	log   *slog.Logger
}

// RegisterArtifacts registers the artifact service on srv.
func RegisterArtifacts(srv grpc.ServiceRegistrar, st Artifacts, log *slog.Logger) {
	agentdv1.RegisterArtifactServiceServer(srv, &artifactServer{store: st, log: log})
}

func (s *artifactServer) toStatus(ctx context.Context, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		// Also an artifact of another user's session: nothing tells the two apart.
		return rpcerr.New(errorsv1.ErrorReason_ARTIFACT_NOT_FOUND, "", nil)
	}
	return toStatus(ctx, s.log, err)
}

// ListArtifacts implements ArtifactService.
func (s *artifactServer) ListArtifacts(ctx context.Context, req *agentdv1.ListArtifactsRequest) (*agentdv1.ListArtifactsResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	list, err := s.store.ListArtifacts(ctx, uid, req.GetSessionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err) // not found: the session itself
	}
	out := &agentdv1.ListArtifactsResponse{Artifacts: make([]*agentdv1.Artifact, 0, len(list))}
	for _, a := range list {
		out.Artifacts = append(out.Artifacts, artifactPB(a))
	}
	return out, nil
}

// GetArtifact implements ArtifactService.
func (s *artifactServer) GetArtifact(ctx context.Context, req *agentdv1.GetArtifactRequest) (*httpbody.HttpBody, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	a, data, err := s.store.GetArtifact(ctx, uid, req.GetSessionId(), req.GetArtifactId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &httpbody.HttpBody{ContentType: a.ContentType, Data: data}, nil
}

func artifactPB(a store.Artifact) *agentdv1.Artifact {
	return &agentdv1.Artifact{
		Id: a.ID, SessionId: a.SessionID, Name: a.Name, ContentType: a.ContentType, Size: float64(a.Size),
		Width: int32(a.Width), Height: int32(a.Height), Agent: a.Agent, Tool: a.Tool, RunId: a.RunID, Source: a.Source,
		CreatedAt: timestamppb.New(a.CreatedAt), Url: "/api/sessions/" + a.SessionID + "/artifacts/" + a.ID,
	}
}
