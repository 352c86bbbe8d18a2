package authn

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// TokenCredentials returns per-RPC credentials that attach the internal
// token to every call made on a connection dialled with
// grpc.WithPerRPCCredentials.
func TokenCredentials(token string) credentials.PerRPCCredentials {
	return tokenCredentials(token)
}

type tokenCredentials string

func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{MDInternalToken: string(t)}, nil
}

// RequireTransportSecurity is false because internal traffic is plaintext
// until mTLS lands; set it to true then, so the token can never again leave
// over an unencrypted connection.
func (tokenCredentials) RequireTransportSecurity() bool { return false }

// propagate forwards the authenticated user of the current call (UserID) on
// an outgoing call, unless the caller set one explicitly with WithUser.
// Without it every hop would have to copy the user by hand, and a forgotten
// copy would turn a user's call into an anonymous one.
func propagate(ctx context.Context) context.Context {
	id, ok := UserID(ctx)
	if !ok {
		return ctx
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(MDUserID)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, MDUserID, id)
}

// UnaryClientInterceptor forwards the current call's user id.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(propagate(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor forwards the current call's user id.
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(propagate(ctx), desc, cc, method, opts...)
	}
}
