// Package grpcclient dials other mgx services: one place that decides
// transport, load balancing, keepalive, tracing and the internal credentials,
// matching what grpcserver expects on the other end.
package grpcclient

import (
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/requestid"
)

// DefaultMaxMsgSize matches grpcserver.DefaultMaxMsgSize; a client limit
// below the server's would fail calls the server happily answers.
const DefaultMaxMsgSize = 16 << 20

// serviceConfig spreads calls over every address the resolver returns.
// gRPC's default, pick_first, would send all of a client's calls to one
// agentd replica behind a dns:/// name with several A records (a Kubernetes
// headless service), however many replicas there are.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Options configures Dial.
type Options struct {
	// InternalToken is attached to every call (see package authn). Empty
	// sends none, for peers that do not check it; mgx services refuse such
	// calls.
	InternalToken string
	// MaxMsgSize bounds received and sent messages; 0 means
	// DefaultMaxMsgSize.
	MaxMsgSize int
	// DialOptions are appended after the factory's own; later options win,
	// e.g. to add transport credentials once mTLS lands.
	DialOptions []grpc.DialOption
}

// Dial returns a client connection to target. It does not connect: the
// first call does (grpc.NewClient semantics), so a service can start before
// its peers and a peer's restart is not the caller's startup failure.
//
// target is any gRPC target: "host:port" and "dns:///host:port" resolve
// through DNS and are balanced round-robin; "unix:///abs/path.sock" dials a
// unix socket; a comma-separated list "h1:p1,h2:p2" is a static set of
// replicas, balanced round-robin too (for hosts without DNS for each replica,
// such as several replicas on one machine). Transport is plaintext for now (internal network only);
// mutual TLS will replace it.
//
// Every call carries the internal token, the trace context (otelgrpc), the
// request id of the context (requestid) and the user the current call acts
// for (authn.UserID or authn.WithUser).
func Dial(target string, opts Options) (*grpc.ClientConn, error) {
	maxMsg := opts.MaxMsgSize
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMsgSize
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
		)),
		grpc.WithChainUnaryInterceptor(
			requestid.UnaryClientInterceptor(),
			authn.UnaryClientInterceptor(),
		),
		grpc.WithChainStreamInterceptor(
			requestid.StreamClientInterceptor(),
			authn.StreamClientInterceptor(),
		),
		grpc.WithDefaultServiceConfig(serviceConfig),
		// Ping after 30 s of silence and give up after 10 s more: a replica
		// that died without closing its connections (node lost) is noticed
		// in under a minute and its calls fail over, instead of hanging
		// until the kernel's TCP timeout. 30 s stays above the 10 s minimum
		// grpcserver enforces.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                30 * time.Second,
			Timeout:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMsg),
			grpc.MaxCallSendMsgSize(maxMsg),
		),
	}
	if opts.InternalToken != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(authn.TokenCredentials(opts.InternalToken)))
	}
	if addrs := strings.Split(target, ","); len(addrs) > 1 {
		// A resolver of the connection's own, so two lists never share state.
		r := manual.NewBuilderWithScheme("mgx-static")
		state := resolver.State{}
		for _, a := range addrs {
			state.Addresses = append(state.Addresses, resolver.Address{Addr: strings.TrimSpace(a)})
		}
		r.InitialState(state)
		dialOpts = append(dialOpts, grpc.WithResolvers(r))
		target = "mgx-static:///replicas"
	}
	cc, err := grpc.NewClient(target, append(dialOpts, opts.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: dial %s: %w", target, err)
	}
	return cc, nil
}
