// Package app is the gateway's composition root: it builds every component
// from the configuration, wires them, serves, and shuts them down in order.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
	"github.com/mgx-ai/mgx/gateway/internal/config"
	"github.com/mgx-ai/mgx/gateway/internal/console"
	"github.com/mgx-ai/mgx/gateway/internal/edge"
	"github.com/mgx-ai/mgx/gateway/internal/health"
	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	"github.com/mgx-ai/mgx/gateway/internal/preview"
	"github.com/mgx-ai/mgx/gateway/internal/ratelimit"
	"github.com/mgx-ai/mgx/gateway/internal/store"
	"github.com/mgx-ai/mgx/gateway/internal/stream"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/service"
	"github.com/mgx-ai/mgx/proto"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	gatewayv1 "github.com/mgx-ai/mgx/proto/gen/mgx/gateway/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// App is a built gateway, ready to serve.
type App struct {
	log  *slog.Logger
	life *service.Lifecycle
	addr string
}

// errDraining makes /healthz report the gateway NOT_SERVING (503) while it drains.
var errDraining = errors.New("draining")

// New builds the gateway and opens its listener; Run serves. On error, whatever was built is closed
// again.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (_ *App, err error) {
	life := service.NewLifecycle(logger, cfg.Service)
	defer func() {
		if err != nil {
			_ = life.Close(context.WithoutCancel(ctx))
		}
	}()
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		logger.Warn("GATEWAY_JWT_SECRET is not set: using a random secret, tokens will not survive a restart or work across replicas")
	}

	rdb, err := redisclient.New(ctx, cfg.RedisURL, redisclient.WithClientName("gateway"))
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	life.Push("redis", func(context.Context) error { return rdb.Close() })
	st := store.New(rdb)

	errs := httperr.Writer{Logger: logger}
	authSvc := auth.NewService(st, auth.Options{
		JWTSecret:          secret,
		AccessTTL:          cfg.AccessTTL,
		RefreshTTL:         cfg.RefreshTTL,
		OperatorEmails:     cfg.OperatorEmails,
		MaxFailuresAccount: cfg.LoginMaxFailures,
		MaxFailuresIP:      cfg.LoginMaxFailuresIP,
		FailureWindow:      cfg.LoginFailureWindow,
		RefreshGrace:       cfg.RefreshGrace,
		RevocationCacheTTL: cfg.RevocationCacheTTL,
		Logger:             logger,
	})
	if cfg.DemoEmail != "" {
		if err := authSvc.EnsureUser(ctx, cfg.DemoEmail, cfg.DemoPassword); err != nil {
			return nil, fmt.Errorf("seed demo account: %w", err)
		}
		logger.Info("demo account ready", "email", cfg.DemoEmail)
	}

	deadlines := edge.Deadlines{Default: cfg.UpstreamTimeout, Methods: map[string]time.Duration{
		agentdv1.SessionService_CreateSession_FullMethodName: cfg.ProvisionTimeout,
		agentdv1.SessionService_LaunchSandbox_FullMethodName: cfg.ProvisionTimeout,
		sandboxdv1.SandboxService_Exec_FullMethodName:        cfg.ExecCeiling,
	}}
	// One bound of open streams per user, whatever their kind and replica.
	slots := stream.NewSlots(rdb, cfg.MaxStreamsPerUser, logger)
	dial := func(target string, up edge.Upstream, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
		up.Deadlines = deadlines
		cc, err := grpcclient.Dial(target, grpcclient.Options{
			InternalToken: cfg.InternalToken,
			DialOptions:   append(edge.UpstreamInterceptors(up), extra...),
		})
		if err != nil {
			return nil, err
		}
		life.Push("grpc client "+target, func(context.Context) error { return cc.Close() })
		return cc, nil
	}
	agentd, err := dial(cfg.AgentdAddr, edge.Upstream{})
	if err != nil {
		return nil, err
	}
	// Streamed commands and followed logs come from sandboxd; event streams count in the bridge.
	sandboxd, err := dial(cfg.SandboxdAddr, edge.Upstream{Streams: slots})
	if err != nil {
		return nil, err
	}

	// The gateway's own services run on an in-process gRPC server built by the same factory as
	// every other service, so validation, recovery, logging and internal auth apply to them exactly
	// as upstream, and grpc-gateway reaches them like any upstream.
	selfCheck := func(ctx context.Context) error {
		if life.Draining() {
			return errDraining
		}
		return st.Ping(ctx)
	}
	self, err := serveInProcess(cfg, logger, life, authSvc, health.New(selfCheck, map[string]grpc.ClientConnInterface{
		"agentd": agentd, "sandboxd": sandboxd,
	}, 2*time.Second))
	if err != nil {
		return nil, err
	}
	selfConn, err := dial("passthrough:///gateway", edge.Upstream{Self: true}, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return self.DialContext(ctx)
	}))
	if err != nil {
		return nil, err
	}

	mux := edge.NewServeMux(errs)
	if err := edge.RegisterAll(ctx, mux, selfConn, agentd, sandboxd); err != nil {
		return nil, fmt.Errorf("register handlers: %w", err)
	}

	previewTarget, err := url.Parse(cfg.PreviewURL)
	if err != nil {
		return nil, fmt.Errorf("SANDBOXD_PREVIEW_URL: %w", err)
	}
	limiter := ratelimit.New(rdb, cfg.RateLimit, cfg.RateWindow, cfg.RateSync, logger)
	// Registered after Redis, so it stops (and pushes its last counts) before Redis closes.
	life.Background("rate limiter", func(ctx context.Context) error { limiter.Run(ctx); return nil })

	bridge := stream.New(stream.Options{
		Events:         agentdv1.NewEventServiceClient(agentd),
		Errors:         errs,
		Logger:         logger,
		JSON:           edge.JSON,
		Slots:          slots,
		Buffer:         cfg.StreamBuffer,
		PingInterval:   cfg.PingInterval,
		OriginPatterns: originHosts(cfg.CORSOrigins),
	})
	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		proxies = append(proxies, netip.MustParsePrefix(strings.TrimSpace(p))) // validated by config
	}
	consoleHandler, err := webConsole(cfg, errs, logger)
	if err != nil {
		return nil, err
	}
	conns := edge.NewConns(cfg.MaxAnonymousConns)
	handler := edge.New(edge.Options{
		Logger:            logger,
		Errors:            errs,
		Auth:              authSvc,
		Limiter:           limiter,
		API:               mux,
		Events:            bridge.WebSocket(),
		EventsSSE:         bridge.SSE(),
		Preview:           preview.New(previewTarget, errs, logger),
		PreviewHostSuffix: cfg.PreviewHostSuffix(),
		OpenAPI:           proto.OpenAPI,
		CORSOrigins:       cfg.CORSOrigins,
		MaxBodyBytes:      cfg.MaxBodyBytes,
		BodyTimeout:       cfg.ReadBodyTimeout,
		TrustedProxies:    proxies,
		Console:           consoleHandler,
		Conns:             conns,
		ServerName:        cfg.ServerName(),
	})

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		// No ReadTimeout: it would stay on the connection and cut WebSockets, SSE streams and long
		// execs; the edge bounds each request's body instead (GATEWAY_READ_BODY_TIMEOUT). No
		// WriteTimeout either: event streams and long execs write for minutes; per-write deadlines
		// are set where streams write.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		// Requests outlive New's context: they end with the server's shutdown.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext: conns.ConnContext,
		ConnState:   conns.ConnState,
	}
	life.HTTP("http server", srv, lis)
	return &App{log: logger, life: life, addr: lis.Addr().String()}, nil
}

func serveInProcess(cfg config.Config, logger *slog.Logger, life *service.Lifecycle, authSvc gatewayv1.AuthServiceServer, healthSvc gatewayv1.HealthServiceServer) (*bufconn.Listener, error) {
	srv, hs, err := grpcserver.New(grpcserver.Options{Logger: logger, InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, err
	}
	gatewayv1.RegisterAuthServiceServer(srv, authSvc)
	gatewayv1.RegisterHealthServiceServer(srv, healthSvc)
	lis := bufconn.Listen(1 << 20)
	life.GRPC("in-process grpc server", srv, hs, lis)
	return lis, nil
}

// originHosts turns CORS origins (http://localhost:3000) into the host
// patterns the WebSocket origin check takes (localhost:3000).
func originHosts(origins []string) []string {
	hosts := make([]string, 0, len(origins))
	for _, o := range origins {
		if o == "*" {
			hosts = append(hosts, "*")
			continue
		}
		if u, err := url.Parse(strings.TrimSpace(o)); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host)
		}
	}
	return hosts
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() string { return a.addr }

// Run serves HTTP until ctx ends, then drains (/healthz answers 503 while the gateway keeps serving
// for GATEWAY_DRAIN_DELAY) and stops: new connections are refused, running requests get
// GATEWAY_SHUTDOWN_TIMEOUT, then everything else closes in reverse build order.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("gateway listening", "addr", a.addr)
	return a.life.Run(ctx)
}

// webConsole is the handler of the built web console, or nil (with the reason logged) when there is
// no build: the API runs without it.
func webConsole(cfg config.Config, errs httperr.Writer, logger *slog.Logger) (http.Handler, error) {
	dir, why, err := console.Resolve(cfg.ConsoleDir)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		logger.Warn("web console unavailable", "reason", why)
		return nil, nil
	}
	frames, err := console.PreviewFrameSource(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	var sources []string
	if frames != "" {
		sources = []string{frames}
	}
	h, err := console.New(console.Options{Dir: dir, FrameSources: sources, Errors: errs})
	if err != nil {
		return nil, err
	}
	logger.Info("web console", "dir", dir)
	return h, nil
}
