package server

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
)

// reasons maps each domain sentinel to its reason; the first that matches wins.
var reasons = []struct {
	target error
	reason errorsv1.ErrorReason
}{
	{sandbox.ErrNotFound, errorsv1.ErrorReason_SANDBOX_NOT_FOUND},
	{sandbox.ErrNoUser, errorsv1.ErrorReason_UNAUTHENTICATED},
	{sandbox.ErrForbidden, errorsv1.ErrorReason_OPERATOR_REQUIRED},
	{sandbox.ErrInvalidArgument, errorsv1.ErrorReason_SANDBOX_INVALID_ARGUMENT},
	{sandbox.ErrFileNotFound, errorsv1.ErrorReason_SANDBOX_PATH_NOT_FOUND},
	{sandbox.ErrAlreadyExists, errorsv1.ErrorReason_SANDBOX_PROCESS_EXISTS},
	{sandbox.ErrFailedPrecondition, errorsv1.ErrorReason_SANDBOX_FAILED_PRECONDITION},
	{sandbox.ErrPermissionDenied, errorsv1.ErrorReason_SANDBOX_PATH_DENIED},
	// 408 through the gateway: the caller's own timeout, the process was killed.
	{sandbox.ErrExecTimeout, errorsv1.ErrorReason_EXEC_TIMEOUT},
	{sandbox.ErrUnavailable, errorsv1.ErrorReason_SANDBOX_UNAVAILABLE},
	{sandbox.ErrNoPort, errorsv1.ErrorReason_SANDBOX_FAILED_PRECONDITION},
	// 409: the owner must decide (ResetWorkspace); never answered with an empty workspace.
	{sandbox.ErrWorkspaceLost, errorsv1.ErrorReason_WORKSPACE_LOST},
	{sandbox.ErrCheckpointNotFound, errorsv1.ErrorReason_CHECKPOINT_NOT_FOUND},
}

// toStatus is the one funnel from domain errors to gRPC status. A domain error about the caller's
// request (a 4xx) is answered with its message, which sandboxd writes for the caller (the path,
// the cwd, the process name). Anything else — a sandbox that cannot be created or reached, a fault —
// is logged here with its whole chain and answered with its reason's stable message only: the chain
// holds host paths (run directories, agent sockets), engine and transport texts, which never
// reach a caller.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	var quota *quotaError
	if errors.As(err, &quota) {
		return quota.status()
	}
	for _, m := range reasons {
		if errors.Is(err, m.target) {
			if rpcerr.HTTPStatus(m.reason) >= 500 {
				return rpcerr.Fail(ctx, log, m.reason, err)
			}
			var meta map[string]string
			var lost *sandbox.WorkspaceLostError
			if errors.As(err, &lost) {
				meta = map[string]string{"state": lost.State, "session_id": lost.SessionID}
			}
			return rpcerr.New(m.reason, err.Error(), meta)
		}
	}
	// The caller's own cancellation or deadline is not a server fault.
	if st, ok := rpcerr.FromContext(err); ok {
		return st
	}
	return rpcerr.Fail(ctx, log, errorsv1.ErrorReason_INTERNAL, err)
}
