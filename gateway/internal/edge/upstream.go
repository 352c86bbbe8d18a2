package edge

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
	"github.com/mgx-ai/mgx/pkg/authn"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// MDUserRole carries the caller's role upstream; sandboxd's all-users
// variants require "operator".
const MDUserRole = "x-mgx-user-role"

// identify puts the request's identity on an outgoing call: the user id
// (authn.WithUser replaces any), the role, and for the in-process auth
// service the client address. It runs inside grpc-gateway's handler, after
// runtime.AnnotateContext replaced the outgoing metadata, which is why this
// cannot be done on the request context in HTTP middleware.
func identify(ctx context.Context, withClientIP bool) context.Context {
	if p, ok := auth.FromContext(ctx); ok {
		ctx = authn.WithUser(ctx, p.UserID)
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		md.Delete(MDUserRole)
		if p.Role != "" {
			md.Set(MDUserRole, p.Role)
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	if ip := auth.ClientIPFromContext(ctx); withClientIP && ip != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, auth.MDClientIP, ip)
	}
	return ctx
}

// Deadlines bounds unary upstream calls that carry no deadline of their own.
type Deadlines struct {
	// Default applies to every unary call not listed below.
	Default time.Duration
	// Provision applies to calls that create a sandbox (a container start,
	// an image build on first use), which agentd bounds itself at 60 s.
	Provision time.Duration
	// ExecGrace is added to an exec's own timeout (ExecDefault when the
	// request leaves it 0), so the sandbox reports the timeout (408, process
	// killed) before the gateway gives up on the call.
	ExecDefault time.Duration
	ExecGrace   time.Duration
}

func (d Deadlines) forCall(req any) time.Duration {
	switch req.(type) {
	case *agentdv1.CreateSessionRequest, *agentdv1.LaunchSandboxRequest:
		return d.Provision
	}
	if ex, ok := req.(*sandboxdv1.ExecRequest); ok {
		t := time.Duration(ex.GetTimeout() * float64(time.Second))
		if t <= 0 {
			t = d.ExecDefault
		}
		return t + d.ExecGrace
	}
	return d.Default
}

// UpstreamInterceptors returns the client interceptors of a connection the
// gateway forwards to. Streams get identity only: an event subscription
// lives as long as its client.
func UpstreamInterceptors(d Deadlines, withClientIP bool) []grpc.DialOption {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = identify(ctx, withClientIP)
		if _, has := ctx.Deadline(); !has {
			if t := d.forCall(req); t > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, t)
				defer cancel()
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(identify(ctx, withClientIP), desc, cc, method, opts...)
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}
