package authn

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// healthPrefix is exempt from authentication: orchestrator probes
// (Kubernetes gRPC probes, grpc_health_probe) cannot present a token, and
// health reveals nothing but serving status.
const healthPrefix = "/grpc.health.v1.Health/"

// Exempt reports whether method (a full gRPC method name) is served without
// the internal token.
func Exempt(method string) bool {
	return strings.HasPrefix(method, healthPrefix)
}

type authenticator struct {
	// sum is the SHA-256 of the expected token. Comparing digests keeps the
	// comparison constant-time in the token's length too, which
	// subtle.ConstantTimeCompare on the raw strings would leak.
	sum   [sha256.Size]byte
	empty bool
}

func newAuthenticator(token string) authenticator {
	return authenticator{sum: sha256.Sum256([]byte(token)), empty: token == ""}
}

// authenticate checks the token and returns ctx carrying the user id.
func (a authenticator) authenticate(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tokens := md.Get(MDInternalToken)
	if len(tokens) == 0 {
		return nil, rpcerr.New(errorsv1.ErrorReason_INTERNAL_TOKEN_MISSING, "", nil)
	}
	got := sha256.Sum256([]byte(tokens[0]))
	// An empty configured token must refuse everything: fail closed rather
	// than accept any caller that also sends "".
	if a.empty || len(tokens) != 1 || subtle.ConstantTimeCompare(got[:], a.sum[:]) != 1 {
		return nil, rpcerr.New(errorsv1.ErrorReason_INTERNAL_TOKEN_INVALID, "", nil)
	}

	switch users := md.Get(MDUserID); len(users) {
	case 0:
		return ctx, nil
	case 1:
		if users[0] == "" {
			return ctx, nil
		}
		return ContextWithUserID(ctx, users[0]), nil
	default:
		// Two identities on one call means a caller appended instead of
		// replacing; acting for either one would be a guess.
		return nil, rpcerr.New(errorsv1.ErrorReason_USER_ID_AMBIGUOUS, "", nil)
	}
}

// UnaryServerInterceptor refuses, with codes.Unauthenticated, unary calls
// that lack the internal token, except health checks, and puts the caller's
// user id in the context for UserID. An empty token refuses every call.
func UnaryServerInterceptor(token string) grpc.UnaryServerInterceptor {
	a := newAuthenticator(token)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if Exempt(info.FullMethod) {
			return handler(ctx, req)
		}
		ctx, err := a.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func StreamServerInterceptor(token string) grpc.StreamServerInterceptor {
	a := newAuthenticator(token)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if Exempt(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx, err := a.authenticate(ss.Context())
		if err != nil {
			return err
		}
		wrapped := middleware.WrapServerStream(ss)
		wrapped.WrappedContext = ctx
		return handler(srv, wrapped)
	}
}
