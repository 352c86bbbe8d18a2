package httperr_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantDetail string
		retryAfter string
	}{
		{"invalid argument", status.Error(codes.InvalidArgument, "bad"), 400, "INVALID_ARGUMENT", "bad", ""},
		{"unauthenticated", status.Error(codes.Unauthenticated, "who"), 401, "UNAUTHENTICATED", "who", ""},
		{"permission denied", status.Error(codes.PermissionDenied, "no"), 403, "PERMISSION_DENIED", "no", ""},
		{"not found", rpcerr.New(errorsv1.ErrorReason_SESSION_NOT_FOUND, "session not found", nil), 404, "NOT_FOUND", "session not found", ""},
		{"already exists", status.Error(codes.AlreadyExists, "dup"), 409, "ALREADY_EXISTS", "dup", ""},
		{"aborted", status.Error(codes.Aborted, "race"), 409, "ABORTED", "race", ""},
		{"exhausted", rpcerr.New(errorsv1.ErrorReason_RATE_LIMITED, "slow down", map[string]string{rpcerr.MetaRetryAfter: "7"}), 429, "RESOURCE_EXHAUSTED", "slow down", "7"},
		{"exec timeout", rpcerr.New(errorsv1.ErrorReason_EXEC_TIMEOUT, "command timed out", nil), 408, "DEADLINE_EXCEEDED", "command timed out", ""},
		{"a server's deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), 504, "DEADLINE_EXCEEDED", "deadline exceeded", ""},
		{"unavailable hides transport", status.Error(codes.Unavailable, "connection error: dial tcp 10.0.0.1:8101"), 503, "UNAVAILABLE", "upstream service unavailable", ""},
		{"unavailable from a service", rpcerr.New(errorsv1.ErrorReason_SANDBOX_UNAVAILABLE, "sandbox engine unavailable", nil), 503, "UNAVAILABLE", "sandbox engine unavailable", ""},
		{"internal from a transport hides its text", status.Error(codes.Internal, "secret cause"), 500, "INTERNAL", "internal error", ""},
		{"plain error is internal", errors.New("secret cause"), 500, "INTERNAL", "internal error", ""},
		{"context canceled", context.Canceled, 499, "CANCELED", "request canceled", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httperr.Writer{}.Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), tt.err)
			require.Equal(t, tt.wantStatus, rec.Code)
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			require.Equal(t, tt.retryAfter, rec.Header().Get("Retry-After"))
			var b struct{ Detail, Code, Message, Reason string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b))
			require.Equal(t, tt.wantCode, b.Code)
			require.Equal(t, tt.wantDetail, b.Detail)
			require.Equal(t, rpcerr.Reason(tt.err).String(), b.Reason, "every error names its reason")
			require.NotContains(t, rec.Body.String(), "secret cause")
		})
	}
}
