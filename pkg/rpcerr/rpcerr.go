// Package rpcerr is the error contract of every mgx service: the reasons of one shared enum
// (errorsv1.ErrorReason), each bound to its gRPC code, its HTTP status and a stable public message in
// one table (reasons.go), and the status errors that carry them.
//
// Each service keeps its own domain sentinels and its own single funnel that turns them into a
// status error here: a status carrying an errdetails.ErrorInfo with Domain "mgx" and the reason.
// The gateway derives the REST status and body from the reason, and other services branch on it,
// never on the human message, so messages can change freely. A funnel never puts a cause in a
// message: Fail logs it and returns the reason's public message.
package rpcerr

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/requestid"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// Domain is the ErrorInfo domain of every error an mgx service builds.
const Domain = "mgx"

// MetaRetryAfter is the ErrorInfo metadata key (whole seconds) the gateway turns into a Retry-After
// header.
const MetaRetryAfter = "retry_after_seconds"

// New returns a status error of reason, with the reason's gRPC code, msg as its message (the
// reason's public message when msg is empty) and an ErrorInfo carrying the reason and meta. msg is
// shown to callers (the gateway puts it in the REST error body), so it must not contain internal
// causes: a funnel logs those (see Fail).
func New(reason errorsv1.ErrorReason, msg string, meta map[string]string) error {
	if msg == "" {
		msg = PublicMessage(reason)
	}
	st := status.New(Code(reason), msg)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reason.String(),
		Domain:   Domain,
		Metadata: meta,
	})
	if err != nil {
		// Only possible if the detail fails to marshal; the code and message still reach the
		// caller, which beats returning a different error.
		return st.Err()
	}
	return withInfo.Err()
}

// Fail logs err, the private cause, with the call's request id, and returns the public error of
// reason: its code and stable message, nothing of the cause. Server faults log at error level,
// anything else (an upstream that is down) at warning.
func Fail(ctx context.Context, log *slog.Logger, reason errorsv1.ErrorReason, err error) error {
	level := slog.LevelWarn
	if HTTPStatus(reason) >= 500 && reason != errorsv1.ErrorReason_UNAVAILABLE && reason != errorsv1.ErrorReason_SANDBOX_UNAVAILABLE {
		level = slog.LevelError
	}
	log.Log(ctx, level, "request failed", "reason", reason.String(), "request_id", requestid.FromContext(ctx), "err", err)
	return New(reason, "", nil)
}

// FromContext maps a context error to its status: context.Canceled to CANCELED and
// context.DeadlineExceeded to DEADLINE_EXCEEDED. Without this explicit mapping a funnel would report a
// caller's own cancellation as INTERNAL, paging someone for what is not a server fault. ok is false
// when err is not a context error.
func FromContext(err error) (_ error, ok bool) {
	switch {
	case errors.Is(err, context.Canceled):
		return New(errorsv1.ErrorReason_CANCELED, "", nil), true
	case errors.Is(err, context.DeadlineExceeded):
		return New(errorsv1.ErrorReason_DEADLINE_EXCEEDED, "", nil), true
	default:
		return nil, false
	}
}

// ErrorInfo returns the mgx ErrorInfo carried by err, which may be a status error received from
// another service or one built by New (also when wrapped). ErrorInfos of other domains are ignored.
func ErrorInfo(err error) (*errdetails.ErrorInfo, bool) {
	st, ok := Status(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info, true
		}
	}
	return nil, false
}

// Reason returns the reason of err: the one its mgx ErrorInfo names, else the generic reason of its
// gRPC code (an error no funnel built: the transport's, a validation interceptor's, grpc-gateway's),
// CANCELED or DEADLINE_EXCEEDED for a context error, INTERNAL for any other error that is no status,
// and ERROR_REASON_UNSPECIFIED for nil.
func Reason(err error) errorsv1.ErrorReason {
	if err == nil {
		return errorsv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	if info, ok := ErrorInfo(err); ok {
		if r, known := errorsv1.ErrorReason_value[info.GetReason()]; known {
			return errorsv1.ErrorReason(r)
		}
	}
	st, ok := Status(err)
	if !ok {
		if ctxErr, isCtx := FromContext(err); isCtx {
			return Reason(ctxErr)
		}
		return errorsv1.ErrorReason_INTERNAL
	}
	return ForCode(st.Code())
}

// Status returns the status err carries: the innermost one when err wraps a status error, with that
// status's own message (status.FromError would return the whole wrapping chain as the message, and
// the chain is private). ok is false when err carries no status.
func Status(err error) (_ *status.Status, ok bool) {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil, false
	}
	st := se.GRPCStatus()
	return st, st != nil
}
