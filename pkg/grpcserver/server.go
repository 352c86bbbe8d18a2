// Package grpcserver builds the one gRPC server every mgx service runs: the
// same interceptor chain, health service, keepalive and limits everywhere,
// so a call behaves alike whichever service answers it.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	protovalidatemw "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/requestid"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	"github.com/mgx-ai/mgx/pkg/telemetry"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// DefaultMaxMsgSize bounds a single message each way. gRPC's own default
// (4 MiB received) is too small for file contents and exec output that
// sandboxd returns; much larger belongs in a stream.
const DefaultMaxMsgSize = 16 << 20

// ErrNoInternalToken is returned by New without Options.InternalToken.
var ErrNoInternalToken = errors.New("grpcserver: internal token is required")

// Options configures New.
type Options struct {
	// Logger receives the access log and panic reports. Trace ids are added
	// to its records whether or not it came from telemetry.NewLogger.
	// Nil means slog.Default().
	Logger *slog.Logger
	// InternalToken is required of every call except health checks
	// (see package authn).
	InternalToken string
	// Reflection registers the gRPC reflection service (for grpcurl). It is
	// behind the internal token like every other service.
	Reflection bool
	// MaxMsgSize bounds received and sent messages; 0 means
	// DefaultMaxMsgSize.
	MaxMsgSize int
	// Validator checks requests against their protovalidate rules; nil means
	// a default validator.
	Validator protovalidate.Validator
	// ServerOptions are appended after the factory's own. Interceptors added
	// here with grpc.ChainUnaryInterceptor run innermost, after validation.
	ServerOptions []grpc.ServerOption
}

// New returns a gRPC server with the standard chain and the health service
// registered, and the health server so the caller can report per-service
// status and flip everything to NOT_SERVING at shutdown (see package
// shutdown). The overall status ("") starts SERVING. The caller registers
// its own services on the returned server before Serve.
func New(opts Options) (*grpc.Server, *health.Server, error) {
	if opts.InternalToken == "" {
		return nil, nil, ErrNoInternalToken
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// The access log relies on trace ids from the context; make sure the
	// handler adds them even if the caller's logger was built elsewhere.
	logger = slog.New(telemetry.TraceHandler(logger.Handler()))

	validator := opts.Validator
	if validator == nil {
		v, err := protovalidate.New()
		if err != nil {
			return nil, nil, fmt.Errorf("grpcserver: create validator: %w", err)
		}
		validator = v
	}
	maxMsg := opts.MaxMsgSize
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMsgSize
	}

	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !authn.Exempt(c.FullMethod())
	})
	logOpts := []logging.Option{
		// One line per call; "started call" lines would double the volume of
		// a log that already has the duration on the finish line.
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			if id := requestid.FromContext(ctx); id != "" {
				return logging.Fields{"request_id", id}
			}
			return nil
		}),
	}
	accessLog := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		logger.ErrorContext(ctx, "panic in gRPC handler",
			"grpc.method", method,
			"request_id", requestid.FromContext(ctx),
			"panic", fmt.Sprint(p),
			"stack", string(debug.Stack()),
		)
		// The panic value and stack stay in the log: they describe our
		// internals, not the caller's mistake.
		return rpcerr.New(errorsv1.ErrorReason_INTERNAL, "", nil)
	})

	// Interceptor order, outermost first. The otelgrpc stats handler is not
	// an interceptor: it wraps all of them, so every interceptor below and
	// every log line already has the call's span in its context.
	//
	//  1. request id: before anything that logs, so the access line and the
	//     panic report carry it. It is a few lines of our own code that
	//     cannot panic on caller input, which is what allows it outside
	//     recovery.
	//  2. logging: outside recovery on purpose, so a call whose handler
	//     panicked still gets its access line, with code Internal, its
	//     duration and request id: that is the call most worth finding.
	//     Health checks are skipped: probes every few seconds would drown
	//     the log.
	//  3. recovery: everything from here down (auth, validation, handler)
	//     is covered; a panic becomes codes.Internal without leaking the
	//     panic value, instead of killing the process and every other
	//     caller's stream with it.
	//  4. auth before validation: an unauthenticated caller must not learn
	//     the request schema from InvalidArgument details, nor spend our CPU
	//     on CEL evaluation.
	//  5. validation last: handlers only ever see valid requests.
	unary := []grpc.UnaryServerInterceptor{
		requestid.UnaryServerInterceptor(),
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(accessLog, logOpts...), notHealth),
		recovery.UnaryServerInterceptor(recoveryOpt),
		authn.UnaryServerInterceptor(opts.InternalToken),
		protovalidatemw.UnaryServerInterceptor(validator),
	}
	stream := []grpc.StreamServerInterceptor{
		requestid.StreamServerInterceptor(),
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(accessLog, logOpts...), notHealth),
		recovery.StreamServerInterceptor(recoveryOpt),
		authn.StreamServerInterceptor(opts.InternalToken),
		protovalidatemw.StreamServerInterceptor(validator),
	}

	serverOpts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
		)),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(maxMsg),
		grpc.MaxSendMsgSize(maxMsg),
		// Clients ping idle connections (see grpcclient); accept pings down
		// to every 10 s, also without active streams, so a client's
		// keepalive never earns it a GOAWAY "too_many_pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			// Ping a client silent for 30 s and drop it after 10 s without
			// an answer: event streams live for minutes, and a peer that
			// vanished (node lost, NAT dropped) would otherwise hold its
			// stream and goroutines until the TCP timeout, which is hours.
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
			// Recycle connections every 30 min (gRPC adds ±10% jitter) so
			// clients re-resolve DNS and spread over replicas added since
			// they connected. MaxConnectionAgeGrace stays infinite: a
			// GOAWAY stops new calls on the connection but never cuts a
			// running stream.
			MaxConnectionAge: 30 * time.Minute,
		}),
	}
	srv := grpc.NewServer(append(serverOpts, opts.ServerOptions...)...)

	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	if opts.Reflection {
		reflection.Register(srv)
	}
	return srv, hs, nil
}
