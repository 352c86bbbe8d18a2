// Package server is agentd's gRPC edge: the session, chat, event and agent services.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

var (
	errNoUser             = errors.New("no user in the call")
	errSandboxUnavailable = errors.New("sandbox service unavailable")
	errNoRun              = errors.New("the session has no run yet")
)

// sessionLimitRetryAfter is the Retry-After of a refused session: sessions end only when their user
// deletes one, so it only paces retries.
const sessionLimitRetryAfter = 60

// sessionLimitError says the user has as many sessions as they may.
type sessionLimitError struct{ limit int }

func (e *sessionLimitError) Error() string {
	return fmt.Sprintf("session limit reached (at most %d per user); delete a session to create another", e.limit)
}

// toStatus is the one funnel from domain errors to gRPC status. Internal causes are logged with the
// request id, never returned to the caller.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	var limit *sessionLimitError
	switch {
	case errors.As(err, &limit):
		return rpcerr.New(errorsv1.ErrorReason_QUOTA_EXCEEDED, limit.Error(), map[string]string{
			rpcerr.MetaRetryAfter: strconv.Itoa(sessionLimitRetryAfter), "quota": "sessions", "limit": strconv.Itoa(limit.limit),
		})
	case errors.Is(err, errSandboxUnavailable):
		// Before any status check: the wrapped status is sandboxd's or gRPC's, and its text private.
		return rpcerr.Fail(ctx, log, errorsv1.ErrorReason_SANDBOX_UNAVAILABLE, err)
	case errors.Is(err, store.ErrNotFound):
		return rpcerr.New(errorsv1.ErrorReason_SESSION_NOT_FOUND, "", nil)
	case errors.Is(err, store.ErrRunActive):
		return rpcerr.New(errorsv1.ErrorReason_RUN_ACTIVE, "", nil)
	case errors.Is(err, store.ErrNotWaiting):
		return rpcerr.New(errorsv1.ErrorReason_NO_QUESTION_WAITING, "", nil)
	case errors.Is(err, errNoRun):
		return rpcerr.New(errorsv1.ErrorReason_NO_RUN, "", nil)
	case errors.Is(err, errNoUser):
		return rpcerr.New(errorsv1.ErrorReason_UNAUTHENTICATED, "the call carries no user", nil)
	}
	if s, ok := rpcerr.FromContext(err); ok {
		return s
	}
	if st, ok := rpcerr.Status(err); ok {
		// A status from sandboxd or gRPC itself. One an mgx funnel built passes on as it is (its
		// message is public, its reason the caller's to branch on), as does a refusal of the
		// caller's request (a validation error); a server fault of anyone else's making is logged
		// and answered with its reason's stable message.
		reason := rpcerr.Reason(st.Err())
		if _, fromFunnel := rpcerr.ErrorInfo(st.Err()); fromFunnel || rpcerr.HTTPStatus(reason) < 500 {
			return st.Err()
		}
		return rpcerr.Fail(ctx, log, reason, err)
	}
	return rpcerr.Fail(ctx, log, errorsv1.ErrorReason_INTERNAL, err)
}
