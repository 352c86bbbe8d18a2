package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestNew(t *testing.T) {
	err := New(codes.NotFound, "SESSION_NOT_FOUND", "session not found", map[string]string{"session_id": "s1"})

	st, ok := status.FromError(err)
	require.True(t, ok)
	require.Equal(t, codes.NotFound, st.Code())
	require.Equal(t, "session not found", st.Message())

	info, ok := ErrorInfo(err)
	require.True(t, ok)
	require.Equal(t, "SESSION_NOT_FOUND", info.GetReason())
	require.Equal(t, Domain, info.GetDomain())
	require.Equal(t, map[string]string{"session_id": "s1"}, info.GetMetadata())
}

func TestFromContext(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantOK     bool
		wantCode   codes.Code
		wantReason string
	}{
		{"canceled", context.Canceled, true, codes.Canceled, ReasonCanceled},
		{"deadline", context.DeadlineExceeded, true, codes.DeadlineExceeded, ReasonDeadlineExceeded},
		{"wrapped canceled", fmt.Errorf("load session: %w", context.Canceled), true, codes.Canceled, ReasonCanceled},
		{"other error", errors.New("boom"), false, codes.OK, ""},
		{"nil", nil, false, codes.OK, ""},
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

	tests := []struct {
		name string
		err  error
		want string
	}{
		{"mgx error", New(codes.InvalidArgument, "BAD_CWD", "cwd leaves /workspace", nil), "BAD_CWD"},
		{"wrapped mgx error", fmt.Errorf("call sandboxd: %w", New(codes.Unavailable, "SANDBOX_DOWN", "down", nil)), "SANDBOX_DOWN"},
		{"status without details", status.Error(codes.Internal, "x"), ""},
		{"foreign domain ignored", foreign.Err(), ""},
		{"plain error", errors.New("x"), ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Reason(tt.err))
		})
	}
}
