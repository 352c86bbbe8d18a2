// Package requestid gives every RPC an id that follows it across services
// and into every log line, independent of whether tracing is sampled.
//
// The server interceptors take the id from the caller's `x-request-id`
// metadata (the gateway sets it from the HTTP request) or mint one, put it
// in the context and echo it in the response header. The client
// interceptors forward the context's id on outgoing calls, so a request that
// crosses gateway → agentd → sandboxd keeps one id.
package requestid

import (
	"context"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// MetadataKey is the gRPC metadata key (and HTTP header) carrying the id.
const MetadataKey = "x-request-id"

// maxLen bounds an id accepted from a caller: ids are logged on every line,
// so an unbounded or binary value would be a log-injection vector.
const maxLen = 128

type ctxKey struct{}

// New returns a fresh request id. Version 7 UUIDs sort by creation time,
// which keeps ids of one incident close together when grepping.
func New() string {
	// NewV7 fails only if crypto/rand does, which since Go 1.24 crashes the
	// process before returning; Must never fires.
	return uuid.Must(uuid.NewV7()).String()
}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the request id in ctx, or "" when there is none.
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Valid reports whether a caller-supplied id is acceptable: 1 to 128
// printable ASCII characters without spaces.
func Valid(id string) bool {
	if id == "" || len(id) > maxLen {
		return false
	}
	for i := range len(id) {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// fromIncoming returns the caller's id when it is valid, else a new one.
func fromIncoming(ctx context.Context) string {
	if vals := metadata.ValueFromIncomingContext(ctx, MetadataKey); len(vals) > 0 && Valid(vals[0]) {
		return vals[0]
	}
	return New()
}

// UnaryServerInterceptor puts the request id in the handler's context and
// in the response header.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id := fromIncoming(ctx)
		// SetHeader only fails once headers are sent, which cannot have
		// happened before the handler ran.
		_ = grpc.SetHeader(ctx, metadata.Pairs(MetadataKey, id))
		return handler(NewContext(ctx, id), req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id := fromIncoming(ss.Context())
		_ = ss.SetHeader(metadata.Pairs(MetadataKey, id))
		return handler(srv, &serverStream{ServerStream: ss, ctx: NewContext(ss.Context(), id)})
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

// outgoing adds the context's request id to the outgoing metadata unless
// the caller already set one explicitly.
func outgoing(ctx context.Context) context.Context {
	id := FromContext(ctx)
	if id == "" {
		return ctx
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(MetadataKey)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, MetadataKey, id)
}

// UnaryClientInterceptor forwards the context's request id.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(outgoing(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor forwards the context's request id.
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(outgoing(ctx), desc, cc, method, opts...)
	}
}
