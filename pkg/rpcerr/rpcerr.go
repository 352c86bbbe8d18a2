// Package rpcerr builds and reads the gRPC status errors every mgx service
// returns at its RPC edge.
//
// Each service keeps its own domain sentinels and its own single funnel that
// turns them into a status; this package only gives those funnels one shape:
// a status carrying an errdetails.ErrorInfo with Domain "mgx" and a stable,
// machine-readable Reason. The gateway's error handler and other services
// branch on the Reason, never on the human message, so messages can change
// freely.
package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of every error an mgx service builds.
const Domain = "mgx"

// Reasons for the context errors FromContext maps. Services define their own
// reasons next to their sentinels.
const (
	ReasonCanceled         = "CANCELED"
	ReasonDeadlineExceeded = "DEADLINE_EXCEEDED"
)

// New returns a status error with code and msg, carrying an ErrorInfo with
// the given reason and metadata. msg is shown to callers (the gateway puts it
// in the REST error body), so it must not contain internal causes: log those
// in the funnel instead. code must not be codes.OK.
func New(code codes.Code, reason, msg string, meta map[string]string) error {
	st := status.New(code, msg)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   Domain,
		Metadata: meta,
	})
	if err != nil {
		// Only possible if the detail fails to marshal; the code and message
		// still reach the caller, which beats returning a different error.
		return st.Err()
	}
	return withInfo.Err()
}

// FromContext maps a context error to its gRPC status: context.Canceled to
// codes.Canceled and context.DeadlineExceeded to codes.DeadlineExceeded.
// Without this explicit mapping a funnel would report a caller's own
// cancellation as codes.Internal (or codes.Unknown), paging someone for what
// is not a server fault. ok is false when err is not a context error.
func FromContext(err error) (_ error, ok bool) {
	switch {
	case errors.Is(err, context.Canceled):
		return New(codes.Canceled, ReasonCanceled, "request canceled", nil), true
	case errors.Is(err, context.DeadlineExceeded):
		return New(codes.DeadlineExceeded, ReasonDeadlineExceeded, "deadline exceeded", nil), true
	default:
		return nil, false
	}
}

// ErrorInfo returns the mgx ErrorInfo carried by err, which may be a status
// error received from another service or one built by New (also when
// wrapped). ErrorInfos of other domains are ignored.
func ErrorInfo(err error) (*errdetails.ErrorInfo, bool) {
	st, ok := status.FromError(err)
	if !ok || st == nil {
		return nil, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info, true
		}
	}
	return nil, false
}

// Reason returns the mgx ErrorInfo reason of err, or "" when it carries none.
func Reason(err error) string {
	info, _ := ErrorInfo(err)
	return info.GetReason()
}
