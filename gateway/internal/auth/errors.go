package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/mgx-ai/mgx/gateway/internal/store"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// Domain errors of authentication.
var (
	ErrInvalidCredentials = errors.New("invalid email or password")
	ErrInvalidToken       = errors.New("invalid token")
	ErrTokenExpired       = errors.New("token expired")
	ErrNoCredentials      = errors.New("authentication required")
	ErrTokenRevoked       = errors.New("token revoked (signed out)")
	ErrSessionRequired    = errors.New("API keys are created and revoked from a signed-in session (an access token), not with an API key")
)

// ThrottledError says a login was refused because of too many recent
// failures; RetryAfter is when the window ends.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins, retry in %s", e.RetryAfter.Round(time.Second))
}

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
		return rpcerr.New(errorsv1.ErrorReason_LOGIN_THROTTLED, throttled.Error(),
			map[string]string{rpcerr.MetaRetryAfter: strconv.Itoa(secs)})
	case errors.Is(err, ErrInvalidCredentials):
		return rpcerr.New(errorsv1.ErrorReason_INVALID_CREDENTIALS, err.Error(), nil)
	case errors.Is(err, ErrTokenExpired):
		return rpcerr.New(errorsv1.ErrorReason_TOKEN_EXPIRED, err.Error(), nil)
	case errors.Is(err, ErrTokenRevoked):
		return rpcerr.New(errorsv1.ErrorReason_TOKEN_INVALID, err.Error(), nil)
	case errors.Is(err, ErrSessionRequired):
		return rpcerr.New(errorsv1.ErrorReason_PERMISSION_DENIED, err.Error(), nil)
	case errors.Is(err, ErrInvalidToken):
		return rpcerr.New(errorsv1.ErrorReason_TOKEN_INVALID, err.Error(), nil)
	case errors.Is(err, ErrNoCredentials):
		return rpcerr.New(errorsv1.ErrorReason_UNAUTHENTICATED, err.Error(), nil)
	case errors.Is(err, store.ErrEmailTaken):
		return rpcerr.New(errorsv1.ErrorReason_EMAIL_TAKEN, "", nil)
	case errors.Is(err, store.ErrNotFound):
		return rpcerr.New(errorsv1.ErrorReason_API_KEY_NOT_FOUND, "", nil)
	default:
		return rpcerr.Fail(ctx, logger, errorsv1.ErrorReason_INTERNAL, err)
	}
}
