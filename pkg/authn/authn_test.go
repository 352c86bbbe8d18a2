package authn_test

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/internal/testservice"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

const token = "s3cret-token"

// serve starts a real gRPC server on a loopback port guarded by the authn
// interceptors for serverToken and returns its address.
func serve(t *testing.T, serverToken string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(authn.UnaryServerInterceptor(serverToken)),
		grpc.ChainStreamInterceptor(authn.StreamServerInterceptor(serverToken)),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	testservice.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// dial connects to addr, attaching clientToken unless it is empty.
func dial(t *testing.T, addr, clientToken string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(authn.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(authn.StreamClientInterceptor()),
	}
	if clientToken != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(authn.TokenCredentials(clientToken)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestHealthIsExempt(t *testing.T) {
	cc := dial(t, serve(t, token), "")
	resp, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
}

func TestServerInterceptors(t *testing.T) {
	addr := serve(t, token)

	tests := []struct {
		name        string
		clientToken string
		stream      bool
		md          metadata.MD // raw outgoing metadata, for malformed calls
		user        string      // set with WithUser
		wantCode    codes.Code
		wantReason  errorsv1.ErrorReason
		wantUser    string
	}{
		{name: "no token", wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_MISSING},
		{name: "no token stream", stream: true, wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_MISSING},
		{name: "wrong token", clientToken: "guess", wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_INVALID},
		{name: "token prefix", clientToken: token[:4], wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_INVALID},
		{name: "service call without user", clientToken: token, wantCode: codes.OK},
		{name: "user call", clientToken: token, user: "user-1", wantCode: codes.OK, wantUser: "user-1"},
		{name: "user call stream", clientToken: token, stream: true, user: "user-2", wantCode: codes.OK, wantUser: "user-2"},
		{
			name: "two user ids", clientToken: token,
			md:       metadata.Pairs(authn.MDUserID, "a", authn.MDUserID, "b"),
			wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_USER_ID_AMBIGUOUS,
		},
		{
			name: "two tokens", clientToken: token,
			md:       metadata.Pairs(authn.MDInternalToken, token),
			wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_INVALID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := dial(t, addr, tt.clientToken)
			ctx := t.Context()
			if tt.md != nil {
				ctx = metadata.NewOutgoingContext(ctx, tt.md)
			}
			if tt.user != "" {
				ctx = authn.WithUser(ctx, tt.user)
			}
			call := testservice.Echo
			if tt.stream {
				call = testservice.EchoStream
			}
			reply, err := call(ctx, cc, testservice.NewRequest("hi", false))
			require.Equal(t, tt.wantCode, status.Code(err), "err: %v", err)
			if tt.wantCode != codes.OK {
				require.Equal(t, tt.wantReason, rpcerr.Reason(err))
				return
			}
			require.Equal(t, "hi", reply.Text)
			require.Equal(t, tt.wantUser, reply.UserID)
		})
	}
}

func TestEmptyServerTokenFailsClosed(t *testing.T) {
	addr := serve(t, "")
	tests := []struct {
		name string
		md   metadata.MD
	}{
		{"no token", nil},
		{"empty token", metadata.Pairs(authn.MDInternalToken, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.NewOutgoingContext(t.Context(), tt.md)
			_, err := testservice.Echo(ctx, dial(t, addr, ""), testservice.NewRequest("hi", false))
			require.Equal(t, codes.Unauthenticated, status.Code(err))
		})
	}
}

// TestClientPropagatesUser is the agentd → sandboxd hop: the user the
// server interceptor authenticated rides along on the next outgoing call.
func TestClientPropagatesUser(t *testing.T) {
	cc := dial(t, serve(t, token), token)

	tests := []struct {
		name     string
		incoming string // user authenticated on the current (incoming) call
		explicit string // user set with WithUser for the outgoing call
		want     string
	}{
		{"incoming user forwarded", "user-in", "", "user-in"},
		{"explicit user wins", "user-in", "user-out", "user-out"},
		{"no user", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.incoming != "" {
				ctx = authn.ContextWithUserID(ctx, tt.incoming)
			}
			if tt.explicit != "" {
				ctx = authn.WithUser(ctx, tt.explicit)
			}
			for _, call := range []func() (testservice.Reply, error){
				func() (testservice.Reply, error) {
					return testservice.Echo(ctx, cc, testservice.NewRequest("x", false))
				},
				func() (testservice.Reply, error) {
					return testservice.EchoStream(ctx, cc, testservice.NewRequest("x", false))
				},
			} {
				reply, err := call()
				require.NoError(t, err)
				require.Equal(t, tt.want, reply.UserID)
			}
		})
	}
}

func TestWithUserReplaces(t *testing.T) {
	ctx := authn.WithUser(authn.WithUser(t.Context(), "a"), "b")
	md, ok := metadata.FromOutgoingContext(ctx)
	require.True(t, ok)
	require.Equal(t, []string{"b"}, md.Get(authn.MDUserID))
}
