package edge

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
	"github.com/mgx-ai/mgx/pkg/authn"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	gatewayv1 "github.com/mgx-ai/mgx/proto/gen/mgx/gateway/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// TestUpstreamIdentity: what an upstream receives is the authenticated
// principal, replacing anything already in the outgoing metadata, and a
// deadline on every unary call.
func TestUpstreamIdentity(t *testing.T) {
	type seen struct {
		md       metadata.MD
		deadline time.Duration
	}
	got := make(chan seen, 1)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		md, _ := metadata.FromIncomingContext(st.Context())
		dl, _ := st.Context().Deadline()
		got <- seen{md: md, deadline: time.Until(dl)}
		var in emptypb.Empty
		if err := st.RecvMsg(&in); err != nil {
			return err
		}
		return st.SendMsg(&emptypb.Empty{})
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	tests := []struct {
		name       string
		principal  *auth.Principal
		clientIP   bool
		forged     metadata.MD
		method     string
		req        any
		wantUser   []string
		wantRole   []string
		wantIP     []string
		minTimeout time.Duration
	}{
		{name: "user", principal: &auth.Principal{UserID: "u1"}, req: &emptypb.Empty{}, wantUser: []string{"u1"}, minTimeout: 20 * time.Second},
		{name: "operator", principal: &auth.Principal{UserID: "op", Role: auth.RoleOperator}, req: &emptypb.Empty{}, wantUser: []string{"op"}, wantRole: []string{"operator"}},
		{
			name: "forged metadata replaced", principal: &auth.Principal{UserID: "u1"}, req: &emptypb.Empty{},
			forged:   metadata.Pairs(authn.MDUserID, "victim", MDUserRole, "operator"),
			wantUser: []string{"u1"},
		},
		{name: "client ip for the auth service", clientIP: true, req: &emptypb.Empty{}, wantIP: []string{"192.0.2.7"}},
		{name: "provisioning gets longer", principal: &auth.Principal{UserID: "u1"}, method: agentdv1.SessionService_CreateSession_FullMethodName, req: &emptypb.Empty{}, wantUser: []string{"u1"}, minTimeout: 100 * time.Second},
		{name: "exec gets its ceiling", principal: &auth.Principal{UserID: "u1"}, method: sandboxdv1.SandboxService_Exec_FullMethodName, req: &emptypb.Empty{}, wantUser: []string{"u1"}, minTimeout: 3000 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := grpc.NewClient(lis.Addr().String(), append(
				UpstreamInterceptors(Upstream{Deadlines: Deadlines{Default: 30 * time.Second, Methods: map[string]time.Duration{
					agentdv1.SessionService_CreateSession_FullMethodName: 120 * time.Second,
					sandboxdv1.SandboxService_Exec_FullMethodName:        3615 * time.Second,
				}}, Self: tt.clientIP}),
				grpc.WithTransportCredentials(insecure.NewCredentials()))...)
			require.NoError(t, err)
			defer cc.Close()
			ctx := auth.ContextWithClientIP(context.Background(), "192.0.2.7")
			if tt.principal != nil {
				ctx = auth.NewContext(ctx, *tt.principal)
			}
			if tt.forged != nil {
				ctx = metadata.NewOutgoingContext(ctx, tt.forged)
			}
			method := tt.method
			if method == "" {
				method = "/test.Svc/Call"
			}
			require.NoError(t, cc.Invoke(ctx, method, tt.req, &emptypb.Empty{}))
			s := <-got
			require.Equal(t, tt.wantUser, s.md.Get(authn.MDUserID))
			require.Equal(t, tt.wantRole, s.md.Get(MDUserRole))
			require.Equal(t, tt.wantIP, s.md.Get(auth.MDClientIP))
			require.Greater(t, s.deadline, tt.minTimeout)
		})
	}
}

// The statuses served are those the proto declares (and the OpenAPI document states).
func TestSuccessStatuses(t *testing.T) {
	require.Equal(t, map[string]int{
		gatewayv1.AuthService_Register_FullMethodName:               http.StatusCreated,
		gatewayv1.AuthService_CreateApiKey_FullMethodName:           http.StatusCreated,
		agentdv1.SessionService_CreateSession_FullMethodName:        http.StatusCreated,
		agentdv1.ChatService_PostMessage_FullMethodName:             http.StatusCreated,
		agentdv1.SessionService_LaunchSandbox_FullMethodName:        http.StatusCreated,
		sandboxdv1.WorkspaceService_CreateCheckpoint_FullMethodName: http.StatusCreated,
		gatewayv1.AuthService_Logout_FullMethodName:                 http.StatusNoContent,
		gatewayv1.AuthService_RevokeApiKey_FullMethodName:           http.StatusNoContent,
		agentdv1.SessionService_DeleteSession_FullMethodName:        http.StatusNoContent,
	}, SuccessStatuses(gatewayv1.File_mgx_gateway_v1_gateway_proto, agentdv1.File_mgx_agentd_v1_agentd_proto,
		sandboxdv1.File_mgx_sandboxd_v1_sandboxd_proto))
}
