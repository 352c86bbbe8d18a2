package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"

	"github.com/mgx-ai/mgx/pkg/rpcerr"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
)

// ErrorInfo reasons of sandboxd's errors.
const (
	ReasonNotFound           = "SANDBOX_NOT_FOUND"
	ReasonNoUser             = "USER_REQUIRED"
	ReasonForbidden          = "OPERATOR_REQUIRED"
	ReasonInvalidArgument    = "SANDBOX_INVALID_ARGUMENT"
	ReasonFileNotFound       = "SANDBOX_PATH_NOT_FOUND"
	ReasonAlreadyExists      = "SANDBOX_PROCESS_EXISTS"
	ReasonFailedPrecondition = "SANDBOX_FAILED_PRECONDITION"
	ReasonPathDenied         = "SANDBOX_PATH_DENIED"
	ReasonExecTimeout        = "EXEC_TIMEOUT"
	ReasonUnavailable        = "SANDBOX_UNAVAILABLE"
	ReasonInternal           = "INTERNAL"
)

// toStatus is the one funnel from domain errors to gRPC status. Messages of
// domain errors are written for callers; anything unexpected is logged here
// and reaches the caller only as a generic Internal.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	type mapping struct {
		target error
		code   codes.Code
		reason string
	}
	for _, m := range []mapping{
		{sandbox.ErrNotFound, codes.NotFound, ReasonNotFound},
		{sandbox.ErrNoUser, codes.Unauthenticated, ReasonNoUser},
		{sandbox.ErrForbidden, codes.PermissionDenied, ReasonForbidden},
		{sandbox.ErrInvalidArgument, codes.InvalidArgument, ReasonInvalidArgument},
		{sandbox.ErrFileNotFound, codes.NotFound, ReasonFileNotFound},
		{sandbox.ErrAlreadyExists, codes.AlreadyExists, ReasonAlreadyExists},
		{sandbox.ErrFailedPrecondition, codes.FailedPrecondition, ReasonFailedPrecondition},
		{sandbox.ErrPermissionDenied, codes.PermissionDenied, ReasonPathDenied},
		// The gateway turns DeadlineExceeded into HTTP 408.
		{sandbox.ErrExecTimeout, codes.DeadlineExceeded, ReasonExecTimeout},
		{sandbox.ErrUnavailable, codes.Unavailable, ReasonUnavailable},
		{sandbox.ErrNoPort, codes.FailedPrecondition, ReasonFailedPrecondition},
	} {
		if errors.Is(err, m.target) {
			if m.code == codes.Unavailable {
				log.WarnContext(ctx, "sandbox unavailable", "err", err)
			}
			return rpcerr.New(m.code, m.reason, err.Error(), nil)
		}
	}
	// The caller's own cancellation or deadline is not a server fault.
	if st, ok := rpcerr.FromContext(err); ok {
		return st
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return rpcerr.New(codes.Internal, ReasonInternal, "internal error", nil)
}
