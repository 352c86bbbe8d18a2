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
	"github.com/mgx-ai/mgx/pkg/shutdown"
	"github.com/mgx-ai/mgx/proto"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	gatewayv1 "github.com/mgx-ai/mgx/proto/gen/mgx/gateway/v1"
)

// App is a built gateway, ready to serve.
type App struct {
	cfg     config.Config
	logger  *slog.Logger
	handler http.Handler
	closers *shutdown.Stack
}

// New builds the gateway. On error, whatever was built is closed again.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (_ *App, err error) {
	closers := shutdown.NewStack(logger)
	defer func() {
		if err != nil {
			_ = closers.Close(context.WithoutCancel(ctx))
		}
	}()
	if cfg.UsesDevInternalToken() {
		logger.Warn("MGX_INTERNAL_TOKEN is the public development token; set your own in production")
	}
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
	closers.Push("redis", func(context.Context) error { return rdb.Close() })
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
		Logger:             logger,
	})
	if cfg.DemoEmail != "" {
		if err := authSvc.EnsureUser(ctx, cfg.DemoEmail, cfg.DemoPassword); err != nil {
			return nil, fmt.Errorf("seed demo account: %w", err)
		}
		logger.Info("demo account ready", "email", cfg.DemoEmail)
	}

	deadlines := edge.Deadlines{Default: cfg.UpstreamTimeout, Provision: cfg.ProvisionTimeout, ExecDefault: 300 * time.Second, ExecGrace: 15 * time.Second}
	dial := func(target string, withClientIP bool, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
		cc, err := grpcclient.Dial(target, grpcclient.Options{
			InternalToken: cfg.InternalToken,
			DialOptions:   append(edge.UpstreamInterceptors(deadlines, withClientIP), extra...),
		})
		if err != nil {
			return nil, err
		}
		closers.Push("grpc client "+target, func(context.Context) error { return cc.Close() })
		return cc, nil
	}
	agentd, err := dial(cfg.AgentdAddr, false)
	if err != nil {
		return nil, err
	}
	sandboxd, err := dial(cfg.SandboxdAddr, false)
	if err != nil {
		return nil, err
	}

	// The gateway's own services run on an in-process gRPC server built by
	// the same factory as every other service, so validation, recovery,
	// logging and internal auth apply to them exactly as upstream, and
	// grpc-gateway reaches them like any upstream.
	self, err := serveInProcess(cfg, logger, closers, authSvc, health.New(st.Ping, map[string]grpc.ClientConnInterface{
		"agentd": agentd, "sandboxd": sandboxd,
	}, 2*time.Second))
	if err != nil {
		return nil, err
	}
	selfConn, err := dial("passthrough:///gateway", true, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
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
	limiterCtx, stopLimiter := context.WithCancel(context.WithoutCancel(ctx))
	limiterDone := make(chan struct{})
	go func() { defer close(limiterDone); limiter.Run(limiterCtx) }()
	// Pushed after Redis, so it stops (and pushes its last counts) first.
	closers.Push("rate limiter", func(context.Context) error {
		stopLimiter()
		<-limiterDone
		return nil
	})

	bridge := stream.New(stream.Options{
		Events:         agentdv1.NewEventServiceClient(agentd),
		Errors:         errs,
		Logger:         logger,
		JSON:           edge.JSON,
		MaxPerUser:     cfg.MaxStreamsPerUser,
		Buffer:         cfg.StreamBuffer,
		PingInterval:   cfg.PingInterval,
		OriginPatterns: originHosts(cfg.CORSOrigins),
	})
	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		proxies = append(proxies, netip.MustParsePrefix(strings.TrimSpace(p))) // validated by config
	}
	openAPI, err := edge.OpenAPI(proto.OpenAPI)
	if err != nil {
		return nil, err
	}
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
		OpenAPI:           openAPI,
		CORSOrigins:       cfg.CORSOrigins,
		MaxBodyBytes:      cfg.MaxBodyBytes,
		TrustedProxies:    proxies,
	})
	return &App{cfg: cfg, logger: logger, handler: handler, closers: closers}, nil
}

func serveInProcess(cfg config.Config, logger *slog.Logger, closers *shutdown.Stack, authSvc gatewayv1.AuthServiceServer, healthSvc gatewayv1.HealthServiceServer) (*bufconn.Listener, error) {
	srv, hs, err := grpcserver.New(grpcserver.Options{Logger: logger, InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, err
	}
	gatewayv1.RegisterAuthServiceServer(srv, authSvc)
	gatewayv1.RegisterHealthServiceServer(srv, healthSvc)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	closers.Push("in-process grpc server", func(context.Context) error {
		return shutdown.GracefulStop(srv, hs, cfg.ShutdownTimeout)
	})
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

// Handler is the root HTTP handler (for tests that bring their own server).
func (a *App) Handler() http.Handler { return a.handler }

// Serve answers HTTP on lis until ctx is done, then drains: new connections
// are refused, running requests get ShutdownTimeout, then everything else
// closes in reverse build order.
func (a *App) Serve(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: event streams and long execs write for minutes;
		// per-write deadlines are set where streams write.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	a.logger.Info("gateway listening", "addr", lis.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	a.closers.Push("http server", func(ctx context.Context) error {
		// Shutdown does not wait for hijacked (WebSocket) connections;
		// their handlers end when the upstream connections close below.
		if err := srv.Shutdown(ctx); err != nil {
			return srv.Close()
		}
		return nil
	})
	closeErr := a.closers.Close(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return closeErr
}

// Run listens on GATEWAY_LISTEN and serves until ctx is done.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	a, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = a.closers.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	return a.Serve(ctx, lis)
}
