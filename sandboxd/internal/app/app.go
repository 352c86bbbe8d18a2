// Package app is sandboxd's composition root: it builds every component from
// the configuration, runs them, and shuts them down in order.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/shutdown"
	sandboximage "github.com/mgx-ai/mgx/sandboxd/image"
	"github.com/mgx-ai/mgx/sandboxd/internal/config"
	"github.com/mgx-ai/mgx/sandboxd/internal/devimage"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver/docker"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver/local"
	"github.com/mgx-ai/mgx/sandboxd/internal/pool"
	"github.com/mgx-ai/mgx/sandboxd/internal/preview"
	"github.com/mgx-ai/mgx/sandboxd/internal/productimage"
	"github.com/mgx-ai/mgx/sandboxd/internal/reaper"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
	"github.com/mgx-ai/mgx/sandboxd/internal/server"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// App is a built sandboxd.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	Manager  *sandbox.Manager
	Store    *store.Store
	Reaper   *reaper.Reaper
	Pool     *pool.Pool
	Preview  *preview.Server
	grpc     *grpc.Server
	health   *health.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	httpSrv  *http.Server
	stack    *shutdown.Stack
	DriverIn driver.Driver
}

// New builds sandboxd and opens its listeners. Close (or Run) releases it.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, stack: shutdown.NewStack(log)}
	defer func() {
		if err != nil {
			_ = a.stack.Close(context.Background())
		}
	}()

	rdb, err := redisclient.New(ctx, cfg.RedisURL, redisclient.WithClientName("sandboxd"))
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	a.stack.Push("redis", func(context.Context) error { return rdb.Close() })
	a.Store = store.New(rdb)
	reg, err := observeStore(a.Store)
	if err != nil {
		return nil, err
	}
	a.stack.Push("metrics", func(context.Context) error { return reg.Unregister() })

	drv, err := openDriver(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a.DriverIn = drv
	a.stack.Push("driver", func(context.Context) error { return drv.Close() })

	a.Manager = sandbox.New(drv, a.Store, sandbox.Options{
		IdleTimeout: cfg.IdleTimeout.D(), CreateTimeout: cfg.CreateTimeout.D(),
		ExecTimeout: cfg.ExecTimeout.D(), MaxExecTimeout: cfg.MaxExecTimeout.D(),
		OutputLimit: cfg.OutputLimit, Logger: log,
	})
	if cfg.PoolSize > 0 {
		a.Pool = pool.New(a.Manager, a.Store, cfg.PoolSize, log)
		a.Manager.SetPool(a.Pool)
	}
	a.Reaper = reaper.New(a.Manager, a.Store, cfg.IdleTimeout.D(), cfg.GCInterval.D(), log)
	if cfg.DestroyOnExit {
		// Pushed here so it runs after the servers and background loops have
		// stopped (nothing creates sandboxes any more) and before the driver
		// and Redis close.
		a.stack.Push("sandboxes (SANDBOXD_DESTROY_ON_EXIT)", func(ctx context.Context) error {
			stopped, err := a.Manager.DestroyAll(ctx, "", true)
			log.Info("destroyed every sandbox on exit", "count", len(stopped))
			return err
		})
	}

	secret := []byte(cfg.PreviewSecret)
	if len(secret) == 0 {
		// Random and kept in sandboxd's Redis, so every replica agrees without another secret to
		// distribute, and nothing a sandbox can read derives it.
		if secret, err = a.Store.PreviewSigningKey(ctx); err != nil {
			return nil, err
		}
	}
	a.Preview, err = preview.New(a.Manager, preview.Options{
		Secret: secret, TokenTTL: cfg.PreviewTokenTTL.D(), PublicURL: cfg.PublicURL,
		KeepAlive: max(min(cfg.IdleTimeout.D()/4, 30*time.Second), 100*time.Millisecond), Logger: log,
	})
	if err != nil {
		return nil, err
	}

	a.grpc, a.health, err = grpcserver.New(grpcserver.Options{Logger: log, InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, err
	}
	server.New(a.Manager, a.Preview, log).Register(a.grpc)

	if a.grpcLis, err = grpcserver.Listen(cfg.Listen); err != nil {
		return nil, err
	}
	if a.httpLis, err = net.Listen("tcp", cfg.PreviewListen); err != nil {
		_ = a.grpcLis.Close()
		return nil, fmt.Errorf("preview listen %s: %w", cfg.PreviewListen, err)
	}
	a.httpSrv = &http.Server{Handler: a.Preview, ReadHeaderTimeout: 30 * time.Second}
	return a, nil
}

func openDriver(ctx context.Context, cfg config.Config, log *slog.Logger) (driver.Driver, error) {
	mem, err := cfg.MemoryBytes()
	if err != nil {
		return nil, err
	}
	if cfg.Driver == "docker" || cfg.Driver == "auto" {
		d, err := docker.New(ctx, docker.Options{
			Image: cfg.Image, AgentBinary: cfg.AgentBinary, RunDir: cfg.RunDir, User: cfg.User,
			NanoCPUs: int64(cfg.CPU * 1e9), Memory: mem, PidsLimit: cfg.PidsLimit,
			Runtime: cfg.Runtime, Network: cfg.Network, Namespace: cfg.Namespace,
		})
		if err == nil {
			image, ierr := ensureImage(ctx, d, cfg, log)
			if ierr != nil {
				_ = d.Close()
				return nil, ierr
			}
			log.Info("sandbox driver: docker", "image", image, "cpu", cfg.CPU, "memory", cfg.Memory, "runtime", cfg.Runtime)
			return d, nil
		}
		if cfg.Driver == "docker" {
			return nil, err
		}
		log.Warn("no Docker engine answers; falling back to the local driver", "err", err)
	}
	log.Warn("SANDBOX DRIVER IS LOCAL: commands run as host processes with sandboxd's own privileges. " +
		"This is NOT isolation; use it only on a development machine.")
	return local.New(local.Options{AgentBinary: cfg.AgentBinary, RunDir: cfg.RunDir})
}

// ensureImage checks that the sandbox image exists, falling back to the dev
// image (built locally when missing) if configured.
func ensureImage(ctx context.Context, d *docker.Driver, cfg config.Config, log *slog.Logger) (string, error) {
	if info, err := d.Client().ImageInspect(ctx, cfg.Image); err == nil {
		if info.Config != nil {
			warnIfStale(cfg.Image, info.Config.Labels, log)
		}
		return cfg.Image, nil
	}
	if cfg.ImageFallback == "" {
		return "", fmt.Errorf("sandbox image %s not found on the engine (build it: make sandbox-image)", cfg.Image)
	}
	log.Warn("SANDBOX IMAGE NOT FOUND; using the minimal development image instead (busybox only: no node, no git). "+
		"Build the product image with `make sandbox-image` (no registry needed) "+
		"or `docker build -t mgx-sandbox:latest sandboxd/image`.",
		"image", cfg.Image, "fallback", cfg.ImageFallback)
	if err := devimage.Ensure(ctx, d.Client(), cfg.ImageFallback, devimage.DefaultBusybox); err != nil {
		return "", fmt.Errorf("sandbox image %s not found and the fallback %s cannot be built: %w", cfg.Image, cfg.ImageFallback, err)
	}
	d.SetImage(cfg.ImageFallback)
	return cfg.ImageFallback, nil
}

// warnIfStale says so when the product image was built by `make sandbox-image`
// from another recipe than this sandboxd's: it still runs, but lacks what the
// recipe added since. An image without the recipe label (a `docker build` of
// the Dockerfile, an image of the operator's own) is not judged.
func warnIfStale(ref string, labels map[string]string, log *slog.Logger) {
	if ref != sandboximage.DefaultRef || labels[productimage.LabelRecipe] == "" {
		return
	}
	if want, err := productimage.ProductHash(); err == nil && labels[productimage.LabelRecipe] != want {
		log.Warn("the sandbox image was built from an older recipe (sandboxd/image changed); rebuild it with `make sandbox-image`",
			"image", ref)
	}
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.grpcLis.Addr().String() }

// PreviewAddr is the address the preview server listens on.
func (a *App) PreviewAddr() string { return a.httpLis.Addr().String() }

// Run serves until ctx ends, then shuts down in order: stop taking calls
// (health NOT_SERVING, drain), stop background loops, close the driver and
// Redis. Sandboxes keep running: the next sandboxd re-adopts them.
func (a *App) Run(ctx context.Context) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if a.Pool != nil {
			go a.Pool.Run(bg)
		}
		a.Reaper.Run(bg)
	}()
	a.stack.Push("background loops", func(ctx context.Context) error {
		stopBG()
		<-done
		if a.Pool != nil {
			a.Pool.Drain(ctx)
		}
		return nil
	})
	a.stack.Push("preview server", func(ctx context.Context) error {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := a.httpSrv.Shutdown(sctx); err != nil {
			return a.httpSrv.Close()
		}
		return nil
	})
	a.stack.Push("grpc server", func(context.Context) error {
		return shutdown.GracefulStop(a.grpc, a.health, 5*time.Second)
	})

	errc := make(chan error, 2)
	go func() { errc <- a.grpc.Serve(a.grpcLis) }()
	go func() {
		if err := a.httpSrv.Serve(a.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	a.log.Info("sandboxd serving", "grpc", a.GRPCAddr(), "preview", a.PreviewAddr(), "driver", a.DriverIn.Name())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return errors.Join(serveErr, a.stack.Close(closeCtx))
}
