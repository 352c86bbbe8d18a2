package grpcclient_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/internal/testservice"
	"github.com/mgx-ai/mgx/pkg/requestid"
)

const token = "client-test-token"

// serve runs a production server on addr and returns the address to dial.
func serve(t *testing.T, addr string, extra ...grpc.ServerOption) string {
	t.Helper()
	srv, _, err := grpcserver.New(grpcserver.Options{
		Logger:        slog.New(slog.DiscardHandler),
		InternalToken: token,
		ServerOptions: extra,
	})
	require.NoError(t, err)
	testservice.Register(srv)
	lis, err := grpcserver.Listen(addr)
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	if lis.Addr().Network() == "unix" {
		return "unix://" + lis.Addr().String()
	}
	return lis.Addr().String()
}

func TestDial(t *testing.T) {
	tcp := serve(t, "127.0.0.1:0")
	unix := serve(t, "unix://"+filepath.Join(t.TempDir(), "s.sock"))

	tests := []struct {
		name     string
		target   string
		token    string
		user     string
		wantCode codes.Code
	}{
		{"tcp with token and user", tcp, token, "user-1", codes.OK},
		{"dns scheme", "dns:///" + tcp, token, "user-1", codes.OK},
		{"unix socket", unix, token, "user-2", codes.OK},
		{"no token", tcp, "", "", codes.Unauthenticated},
		{"wrong token", tcp, "nope", "", codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := grpcclient.Dial(tt.target, grpcclient.Options{InternalToken: tt.token})
			require.NoError(t, err)
			t.Cleanup(func() { _ = cc.Close() })

			// Health never needs the token.
			_, err = healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
			require.NoError(t, err)

			ctx := t.Context()
			if tt.user != "" {
				ctx = authn.WithUser(ctx, tt.user)
			}
			reply, err := testservice.Echo(ctx, cc, testservice.NewRequest("hi", false))
			require.Equal(t, tt.wantCode, status.Code(err), "err: %v", err)
			if tt.wantCode == codes.OK {
				require.Equal(t, tt.user, reply.UserID)
			}
		})
	}
}

// TestDialPropagatesCallContext is the agentd → sandboxd hop: inside a
// handler, the context already holds the request id and the user; the next
// call must carry both without the handler copying anything.
func TestDialPropagatesCallContext(t *testing.T) {
	cc, err := grpcclient.Dial(serve(t, "127.0.0.1:0"), grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })

	ctx := requestid.NewContext(t.Context(), "req-from-gateway")
	ctx = authn.ContextWithUserID(ctx, "user-9")

	for name, call := range map[string]func() (testservice.Reply, error){
		"unary": func() (testservice.Reply, error) {
			return testservice.Echo(ctx, cc, testservice.NewRequest("x", false))
		},
		"stream": func() (testservice.Reply, error) {
			return testservice.EchoStream(ctx, cc, testservice.NewRequest("x", false))
		},
	} {
		t.Run(name, func(t *testing.T) {
			reply, err := call()
			require.NoError(t, err)
			require.Equal(t, "req-from-gateway", reply.RequestID)
			require.Equal(t, "user-9", reply.UserID)
		})
	}
}

func TestDialMessageSize(t *testing.T) {
	addr := serve(t, "127.0.0.1:0")
	cc, err := grpcclient.Dial(addr, grpcclient.Options{InternalToken: token, MaxMsgSize: 1024})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })

	// The validation rule caps text at 100 bytes, so exceed the 1 KiB
	// limit on the client's side of the wire first.
	_, err = testservice.Echo(t.Context(), cc, testservice.NewRequest(strings.Repeat("x", 2048), false))
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
}

// TestDialRoundRobin checks that calls through one connection reach every
// backend address, which the default pick_first policy would not do, whether
// the addresses come from a resolver (as DNS answering with two A records) or
// from a static comma-separated list.
func TestDialRoundRobin(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{} // backend address → calls it served
	record := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if p, ok := peer.FromContext(ctx); ok {
			mu.Lock()
			seen[p.LocalAddr.String()]++
			mu.Unlock()
		}
		return h(ctx, req)
	})
	a := serve(t, "127.0.0.1:0", record)
	b := serve(t, "127.0.0.1:0", record)

	r := manual.NewBuilderWithScheme("mgxtest")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a}, {Addr: b}}})
	tests := []struct {
		name   string
		target string
		opts   []grpc.DialOption
	}{
		{name: "resolver", target: r.Scheme() + ":///backends", opts: []grpc.DialOption{grpc.WithResolvers(r)}},
		{name: "static list", target: a + ", " + b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			clear(seen)
			mu.Unlock()
			cc, err := grpcclient.Dial(tt.target, grpcclient.Options{InternalToken: token, DialOptions: tt.opts})
			require.NoError(t, err)
			t.Cleanup(func() { _ = cc.Close() })

			backends := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(seen)
			}
			// round_robin only picks READY subchannels, and the second one may
			// still be connecting when the first call goes out: keep calling until
			// both served one, within a deadline.
			deadline := time.Now().Add(10 * time.Second)
			for backends() < 2 && time.Now().Before(deadline) {
				_, err := testservice.Echo(t.Context(), cc, testservice.NewRequest("x", false), grpc.WaitForReady(true))
				require.NoError(t, err)
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, seen, 2, "calls spread over both backends: %v", seen)
		})
	}
}
