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
		{"not found", rpcerr.New(codes.NotFound, "SESSION_NOT_FOUND", "session not found", nil), 404, "NOT_FOUND", "session not found", ""},
		{"already exists", status.Error(codes.AlreadyExists, "dup"), 409, "ALREADY_EXISTS", "dup", ""},
		{"aborted", status.Error(codes.Aborted, "race"), 409, "ABORTED", "race", ""},
		{"exhausted", rpcerr.New(codes.ResourceExhausted, "X", "slow down", map[string]string{httperr.MetaRetryAfter: "7"}), 429, "RESOURCE_EXHAUSTED", "slow down", "7"},
		{"exec timeout", rpcerr.New(codes.DeadlineExceeded, "EXEC_TIMEOUT", "command timed out", nil), 408, "DEADLINE_EXCEEDED", "command timed out", ""},
		{"unavailable hides transport", status.Error(codes.Unavailable, "connection error: dial tcp 10.0.0.1:8101"), 503, "UNAVAILABLE", "upstream service unavailable", ""},
		{"unavailable from a service", rpcerr.New(codes.Unavailable, "ENGINE_DOWN", "sandbox engine unavailable", nil), 503, "UNAVAILABLE", "sandbox engine unavailable", ""},
		{"plain error is internal", errors.New("secret cause"), 500, "INTERNAL", "Internal Server Error", ""},
		{"context canceled", context.Canceled, 499, "CANCELED", "request canceled", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httperr.Writer{}.Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), tt.err)
			require.Equal(t, tt.wantStatus, rec.Code)
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			require.Equal(t, tt.retryAfter, rec.Header().Get("Retry-After"))
			var b httperr.Body
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b))
			require.Equal(t, tt.wantCode, b.Code)
			require.Equal(t, tt.wantDetail, b.Detail)
			require.NotContains(t, rec.Body.String(), "secret cause")
		})
	}
}
