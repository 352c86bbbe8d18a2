package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/mgx-ai/mgx/gateway/internal/store"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
)

// Domain errors of authentication.
var (
	ErrInvalidCredentials = errors.New("invalid email or password")
	ErrInvalidToken       = errors.New("invalid token")
	ErrTokenExpired       = errors.New("token expired")
	ErrNoCredentials      = errors.New("authentication required")
)

// ThrottledError says a login was refused because of too many recent
// failures; RetryAfter is when the window ends.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins, retry in %s", e.RetryAfter.Round(time.Second))
}

// ErrorInfo reasons.
const (
	ReasonInvalidCredentials = "INVALID_CREDENTIALS"
	ReasonTokenInvalid       = "TOKEN_INVALID"
	ReasonTokenExpired       = "TOKEN_EXPIRED"
	ReasonUnauthenticated    = "UNAUTHENTICATED"
	ReasonEmailTaken         = "EMAIL_TAKEN"
	ReasonLoginThrottled     = "LOGIN_THROTTLED"
	ReasonAPIKeyNotFound     = "API_KEY_NOT_FOUND"
	ReasonInternal           = "INTERNAL"

	// MetaRetryAfter is the ErrorInfo metadata key (whole seconds) the edge
	// turns into a Retry-After header.
	MetaRetryAfter = "retry_after_seconds"
)

// ToStatus is the auth domain's one funnel into gRPC status errors.
// Internal causes are logged here and never reach the caller.
func ToStatus(ctx context.Context, logger *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := rpcerr.FromContext(err); ok {
		return st
	}
	var throttled *ThrottledError
	switch {
	case errors.As(err, &throttled):
		secs := int(math.Ceil(throttled.RetryAfter.Seconds()))
		secs = max(secs, 1)
		return rpcerr.New(codes.ResourceExhausted, ReasonLoginThrottled, throttled.Error(),
			map[string]string{MetaRetryAfter: strconv.Itoa(secs)})
	case errors.Is(err, ErrInvalidCredentials):
		return rpcerr.New(codes.Unauthenticated, ReasonInvalidCredentials, err.Error(), nil)
	case errors.Is(err, ErrTokenExpired):
		return rpcerr.New(codes.Unauthenticated, ReasonTokenExpired, err.Error(), nil)
	case errors.Is(err, ErrInvalidToken):
		return rpcerr.New(codes.Unauthenticated, ReasonTokenInvalid, err.Error(), nil)
	case errors.Is(err, ErrNoCredentials):
		return rpcerr.New(codes.Unauthenticated, ReasonUnauthenticated, err.Error(), nil)
	case errors.Is(err, store.ErrEmailTaken):
		return rpcerr.New(codes.AlreadyExists, ReasonEmailTaken, "email already registered", nil)
	case errors.Is(err, store.ErrNotFound):
		return rpcerr.New(codes.NotFound, ReasonAPIKeyNotFound, "api key not found", nil)
	default:
		logger.ErrorContext(ctx, "auth failure", "err", err)
		return rpcerr.New(codes.Internal, ReasonInternal, "internal error", nil)
	}
}
