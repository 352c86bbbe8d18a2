package rpcerr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/requestid"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

func TestNew(t *testing.T) {
	err := New(errorsv1.ErrorReason_SESSION_NOT_FOUND, "session s1 not found", map[string]string{"session_id": "s1"})

	st, ok := status.FromError(err)
	require.True(t, ok)
	require.Equal(t, codes.NotFound, st.Code(), "the code comes from the reason")
	require.Equal(t, "session s1 not found", st.Message())

	info, ok := ErrorInfo(err)
	require.True(t, ok)
	require.Equal(t, "SESSION_NOT_FOUND", info.GetReason())
	require.Equal(t, Domain, info.GetDomain())
	require.Equal(t, map[string]string{"session_id": "s1"}, info.GetMetadata())

	require.Equal(t, "session not found", status.Convert(New(errorsv1.ErrorReason_SESSION_NOT_FOUND, "", nil)).Message(),
		"no message means the reason's public one")
}

// Every reason has its place in the table, so no reason can fall back to 500 by omission.
func TestEveryReasonIsMapped(t *testing.T) {
	for v, name := range errorsv1.ErrorReason_name {
		r := errorsv1.ErrorReason(v)
		if r == errorsv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			continue
		}
		s, ok := reasons[r]
		require.True(t, ok, "%s has no entry in the reasons table", name)
		require.NotEqual(t, codes.OK, s.code, name)
		require.GreaterOrEqual(t, s.status, 400, name)
		require.NotEmpty(t, s.message, name)
	}
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		require.NotEqual(t, errorsv1.ErrorReason_ERROR_REASON_UNSPECIFIED, ForCode(c), c.String())
	}
}

func TestHTTPStatus(t *testing.T) {
	for r, want := range map[errorsv1.ErrorReason]int{
		errorsv1.ErrorReason_EXEC_TIMEOUT:       http.StatusRequestTimeout,
		errorsv1.ErrorReason_DEADLINE_EXCEEDED:  http.StatusGatewayTimeout,
		errorsv1.ErrorReason_RUN_ACTIVE:         http.StatusConflict,
		errorsv1.ErrorReason_REQUEST_TOO_LARGE:  http.StatusRequestEntityTooLarge,
		errorsv1.ErrorReason_METHOD_NOT_ALLOWED: http.StatusMethodNotAllowed,
		errorsv1.ErrorReason_CANCELED:           StatusClientClosed,
		errorsv1.ErrorReason_LOGIN_THROTTLED:    http.StatusTooManyRequests,
		errorsv1.ErrorReason(999):               http.StatusInternalServerError,
	} {
		require.Equal(t, want, HTTPStatus(r), r.String())
	}
}

func TestFromContext(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantOK     bool
		wantCode   codes.Code
		wantReason errorsv1.ErrorReason
	}{
		{"canceled", context.Canceled, true, codes.Canceled, errorsv1.ErrorReason_CANCELED},
		{"deadline", context.DeadlineExceeded, true, codes.DeadlineExceeded, errorsv1.ErrorReason_DEADLINE_EXCEEDED},
		{"wrapped canceled", fmt.Errorf("load session: %w", context.Canceled), true, codes.Canceled, errorsv1.ErrorReason_CANCELED},
		{"other error", errors.New("boom"), false, codes.OK, 0},
		{"nil", nil, false, codes.OK, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromContext(tt.err)
			require.Equal(t, tt.wantOK, ok)
			if !tt.wantOK {
				require.NoError(t, got)
				return
			}
			require.Equal(t, tt.wantCode, status.Code(got))
			require.Equal(t, tt.wantReason, Reason(got))
		})
	}
}

func TestReason(t *testing.T) {
	foreign, err := status.New(codes.Internal, "x").WithDetails(&errdetails.ErrorInfo{Reason: "OTHER", Domain: "googleapis.com"})
	require.NoError(t, err)
	unknown, err := status.New(codes.NotFound, "x").WithDetails(&errdetails.ErrorInfo{Reason: "FROM_A_NEWER_SERVICE", Domain: Domain})
	require.NoError(t, err)

	tests := []struct {
		name string
		err  error
		want errorsv1.ErrorReason
	}{
		{"mgx error", New(errorsv1.ErrorReason_SANDBOX_INVALID_ARGUMENT, "cwd leaves /workspace", nil), errorsv1.ErrorReason_SANDBOX_INVALID_ARGUMENT},
		{"wrapped mgx error", fmt.Errorf("call sandboxd: %w", New(errorsv1.ErrorReason_SANDBOX_UNAVAILABLE, "", nil)), errorsv1.ErrorReason_SANDBOX_UNAVAILABLE},
		{"status without details: by code", status.Error(codes.InvalidArgument, "x"), errorsv1.ErrorReason_INVALID_ARGUMENT},
		{"transport error", status.Error(codes.Unavailable, "dial tcp"), errorsv1.ErrorReason_UNAVAILABLE},
		{"unknown code", status.Error(codes.Unknown, "x"), errorsv1.ErrorReason_INTERNAL},
		{"foreign domain ignored", foreign.Err(), errorsv1.ErrorReason_INTERNAL},
		{"unknown mgx reason: by code", unknown.Err(), errorsv1.ErrorReason_NOT_FOUND},
		{"plain error", errors.New("x"), errorsv1.ErrorReason_INTERNAL},
		{"context error", fmt.Errorf("wait: %w", context.DeadlineExceeded), errorsv1.ErrorReason_DEADLINE_EXCEEDED},
		{"nil", nil, errorsv1.ErrorReason_ERROR_REASON_UNSPECIFIED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Reason(tt.err))
		})
	}
}

// Fail returns the reason's public message only; the cause goes to the log with the request id.
func TestFail(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := requestid.NewContext(context.Background(), "req-42")
	cause := errors.New(`dial unix /var/lib/mgx/run/mgx-sbx-1/agent.sock: connect: connection refused`)
	err := Fail(ctx, log, errorsv1.ErrorReason_SANDBOX_UNAVAILABLE, fmt.Errorf("sandbox unavailable: %w", cause))
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, "the sandbox is unavailable; try again", status.Convert(err).Message())
	require.NotContains(t, err.Error(), "agent.sock")
	require.Contains(t, logs.String(), "agent.sock")
	require.Contains(t, logs.String(), "request_id=req-42")
	require.Contains(t, logs.String(), "level=WARN", "an unavailable upstream is not a server fault")

	logs.Reset()
	_ = Fail(ctx, log, errorsv1.ErrorReason_INTERNAL, cause)
	require.Contains(t, logs.String(), "level=ERROR")
}
