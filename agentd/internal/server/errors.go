// Package server is agentd's gRPC edge: the session, chat, event and agent services.
package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
)

// Error reasons (errdetails.ErrorInfo.Reason) agentd returns.
const (
	ReasonNotFound           = "NOT_FOUND"
	ReasonRunActive          = "RUN_ACTIVE"
	ReasonNotWaiting         = "NO_QUESTION_WAITING"
	ReasonNoRun              = "NO_RUN"
	ReasonUnauthenticated    = "UNAUTHENTICATED"
	ReasonSandboxUnavailable = "SANDBOX_UNAVAILABLE"
	ReasonInternal           = "INTERNAL"
)

var (
	errNoUser             = errors.New("no user in the call")
	errSandboxUnavailable = errors.New("sandbox service unavailable")
	errNoRun              = errors.New("the session has no run yet")
)

// toStatus is the one funnel from domain errors to gRPC status. Internal causes are logged, never
// returned to the caller.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		// Already a status (e.g. from sandboxd): pass its code on, not its internals.
		st := status.Convert(err)
		if st.Code() == codes.Internal || st.Code() == codes.Unknown {
			log.ErrorContext(ctx, "upstream failure", "err", err)
			return rpcerr.New(codes.Internal, ReasonInternal, "internal error", nil)
		}
		return err
	}
	if s, ok := rpcerr.FromContext(err); ok {
		return s
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rpcerr.New(codes.NotFound, ReasonNotFound, "session not found", nil)
	case errors.Is(err, store.ErrRunActive):
		// Aborted is 409 Conflict through the gateway.
		return rpcerr.New(codes.Aborted, ReasonRunActive, "a run is already in progress for this session; wait for it or cancel it", nil)
	case errors.Is(err, store.ErrNotWaiting):
		return rpcerr.New(codes.FailedPrecondition, ReasonNotWaiting, "no question is waiting for an answer in this session", nil)
	case errors.Is(err, errNoRun):
		return rpcerr.New(codes.NotFound, ReasonNoRun, "the session has no run yet", nil)
	case errors.Is(err, errNoUser):
		return rpcerr.New(codes.Unauthenticated, ReasonUnauthenticated, "the call carries no user", nil)
	case errors.Is(err, errSandboxUnavailable):
		log.WarnContext(ctx, "sandboxd unavailable", "err", err)
		return rpcerr.New(codes.Unavailable, ReasonSandboxUnavailable, "the sandbox service is unavailable; try again", nil)
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return rpcerr.New(codes.Internal, ReasonInternal, "internal error", nil)
}
