// Package app is sandboxd's composition root: it builds every component from
// the configuration, runs them, and shuts them down in order.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/service"
	sandboximage "github.com/mgx-ai/mgx/sandboxd/image"
	"github.com/mgx-ai/mgx/sandboxd/internal/config"
	"github.com/mgx-ai/mgx/sandboxd/internal/devimage"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver/docker"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver/kubernetes"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver/local"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
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
	Driver   driver.Driver
	life     *service.Lifecycle
	grpcAddr string
	httpAddr string
}

// New builds sandboxd and opens its listeners; Run serves. On error, whatever was built is closed
// again.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, life: service.NewLifecycle(log, cfg.Service)}
	defer func() {
		if err != nil {
			_ = a.life.Close(context.WithoutCancel(ctx))
		}
	}()

	rdb, err := redisclient.New(ctx, cfg.RedisURL, redisclient.WithClientName("sandboxd"))
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	a.life.Push("redis", func(context.Context) error { return rdb.Close() })
	a.Store = store.New(rdb)
	reg, err := observeStore(a.Store)
	if err != nil {
		return nil, err
	}
	a.life.Push("metrics", func(context.Context) error { return reg.Unregister() })

	drv, err := openDriver(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a.Driver = drv
	a.life.Push("driver", func(context.Context) error { return drv.Close() })

	replica := randomReplica()
	fleet := instance.New(drv, instance.Options{CreateTimeout: cfg.CreateTimeout.D(), Logger: log})
	var warm sandbox.Pool
	if cfg.PoolSize > 0 {
		a.Pool = pool.New(fleet, a.Store, pool.Options{Size: cfg.PoolSize, Replica: replica, CreateTimeout: cfg.CreateTimeout.D(), Logger: log})
		warm = a.Pool
	}
	limit, _ := cfg.WorkspaceLimitBytes()
	_, enforced, _ := cfg.VolumeDriverOpts()
	enforced = enforced && drv.Name() == "docker"
	if drv.Name() == "kubernetes" {
		// A workspace is a claim of SANDBOX_K8S_WORKSPACE_SIZE: the storage class bounds it.
		size, _ := cfg.K8s.Size()
		limit, enforced = size.Value(), true
	}
	if limit > 0 && !enforced {
		log.Warn("SANDBOX_WORKSPACE_LIMIT is reported but not enforced: the volume driver has no per-volume quota "+
			"(Docker's local driver keeps a volume as a directory on the engine's file system; ext4, and xfs without "+
			"project quotas, cannot bound one). Use a volume driver with a size option (SANDBOX_VOLUME_DRIVER).",
			"limit", cfg.WorkspaceLimit, "driver", drv.Name(), "volume_driver", cfg.VolumeDriver)
	}
	a.Manager, err = sandbox.New(fleet, a.Store, warm, sandbox.Options{
		IdleTimeout: cfg.IdleTimeout.D(), CreateTimeout: cfg.CreateTimeout.D(),
		ExecTimeout: cfg.ExecTimeout.D(), MaxExecTimeout: cfg.MaxExecTimeout.D(),
		OutputLimit: cfg.OutputLimit, VolumeGrace: cfg.VolumeGrace.D(),
		WorkspaceLimit: limit, WorkspaceLimitEnforced: enforced,
		Namespace: cfg.Namespace, CheckpointExclude: cfg.CheckpointExcludes(), CheckpointKeep: cfg.CheckpointKeep,
		Replica: replica, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	a.Reaper = reaper.New(a.Manager, cfg.IdleTimeout.D(), cfg.GCInterval.D(), log)
	if cfg.DestroyOnExit {
		// Registered here so it runs after the servers and background loops have stopped (nothing
		// creates sandboxes any more) and before the driver and Redis close.
		a.life.Push("sandboxes (SANDBOXD_DESTROY_ON_EXIT)", func(ctx context.Context) error {
			stopped, err := a.Manager.DestroyAll(ctx, "", true)
			log.Info("destroyed every sandbox on exit", "count", len(stopped))
			return err
		})
	}
	if a.Pool != nil {
		// Registered before the refill loop, so it runs after the loop has stopped: nothing refills
		// what this drains.
		a.life.Push("warm pool drain", func(ctx context.Context) error { a.Pool.Drain(ctx); return nil })
		a.life.Background("warm pool", func(ctx context.Context) error { a.Pool.Run(ctx); return nil })
	}
	a.life.Background("reaper", func(ctx context.Context) error { a.Reaper.Run(ctx); return nil })

	secret := []byte(cfg.PreviewSecret)
	if len(secret) == 0 {
		// Random and kept in sandboxd's Redis, so every replica agrees without another secret to
		// distribute, and nothing a sandbox can read derives it.
		if secret, err = a.Store.PreviewSigningKey(ctx); err != nil {
			return nil, err
		}
	}
	a.Preview, err = preview.New(a.Manager, a.Store, preview.Options{
		Secret: secret, TTL: cfg.PreviewTokenTTL.D(), PublicURL: cfg.PublicURL,
		KeepAlive: max(min(cfg.IdleTimeout.D()/4, 30*time.Second), 100*time.Millisecond), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if why := a.Preview.Off(); why != nil {
		log.Warn("previews are off: no preview URL will be handed out until MGX_PUBLIC_URL names a host", "public_url", cfg.PublicURL, "reason", why)
	}

	httpLis, err := net.Listen("tcp", cfg.PreviewListen)
	if err != nil {
		return nil, fmt.Errorf("preview listen %s: %w", cfg.PreviewListen, err)
	}
	a.httpAddr = httpLis.Addr().String()
	a.life.HTTP("preview server", &http.Server{Handler: a.Preview, ReadHeaderTimeout: 30 * time.Second}, httpLis)

	srv, hs, err := grpcserver.New(grpcserver.Options{Logger: log, InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, err
	}
	quotas := server.NewQuotas(rdb, cfg.MaxExecsPerUser, cfg.MaxProcessesPerUser, log)
	server.New(a.Manager, a.Preview, quotas, log).Register(srv)
	grpcLis, err := grpcserver.Listen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	a.grpcAddr = grpcLis.Addr().String()
	a.life.GRPC("grpc server", srv, hs, grpcLis)
	return a, nil
}

func openDriver(ctx context.Context, cfg config.Config, log *slog.Logger) (driver.Driver, error) {
	mem, err := cfg.MemoryBytes()
	if err != nil {
		return nil, err
	}
	if cfg.Driver == "kubernetes" {
		return openKubernetes(ctx, cfg, mem, log)
	}
	if cfg.Driver == "docker" || cfg.Driver == "auto" {
		volOpts, _, err := cfg.VolumeDriverOpts()
		if err != nil {
			return nil, err
		}
		d, err := docker.New(ctx, docker.Options{
			Image: cfg.Image, AgentBinary: cfg.AgentBinary, RunDir: cfg.RunDir, User: cfg.User,
			NanoCPUs: int64(cfg.CPU * 1e9), Memory: mem, PidsLimit: cfg.PidsLimit,
			Runtime: cfg.Runtime, Network: cfg.Network, Namespace: cfg.Namespace,
			VolumeDriver: cfg.VolumeDriver, VolumeOpts: volOpts,
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

func openKubernetes(ctx context.Context, cfg config.Config, mem int64, log *slog.Logger) (driver.Driver, error) {
	size, err := cfg.K8s.Size()
	if err != nil {
		return nil, err
	}
	metaSize, err := cfg.K8s.MetaQuantity()
	if err != nil {
		return nil, err
	}
	d, err := kubernetes.New(ctx, kubernetes.Options{
		Namespace: cfg.K8s.Namespace, Kubeconfig: cfg.K8s.Kubeconfig,
		Image: cfg.Image, AgentImage: cfg.K8s.AgentImage, AgentImagePath: cfg.K8s.AgentPath,
		PullPolicy: corev1.PullPolicy(cfg.K8s.PullPolicy), User: cfg.User,
		MilliCPU: int64(cfg.CPU * 1000), Memory: mem, RuntimeClass: cfg.Runtime,
		StorageClass: cfg.K8s.StorageClass, WorkspaceSize: size, MetaSize: metaSize, ServiceAccount: cfg.K8s.ServiceAccount,
		AgentPort: cfg.K8s.AgentPort, AgentRoute: cfg.K8s.AgentRoute, DeploymentNamespace: cfg.Namespace, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("sandbox driver: kubernetes", "namespace", cfg.K8s.Namespace, "image", cfg.Image,
		"cpu", cfg.CPU, "memory", cfg.Memory, "runtime_class", cfg.Runtime, "storage_class", cfg.K8s.StorageClass,
		"workspace_size", cfg.K8s.WorkspaceSize, "meta_size", cfg.K8s.MetaSize)
	return d, nil
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
func (a *App) GRPCAddr() string { return a.grpcAddr }

// PreviewAddr is the address the preview server listens on.
func (a *App) PreviewAddr() string { return a.httpAddr }

// Run serves until ctx ends, then drains and stops: the servers stop taking calls, the reaper and the
// pool stop, then the driver and Redis close. Sandboxes keep running (unless SANDBOXD_DESTROY_ON_EXIT):
// the next sandboxd re-adopts them.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("sandboxd serving", "grpc", a.GRPCAddr(), "preview", a.PreviewAddr(), "driver", a.Driver.Name())
	return a.life.Run(ctx)
}

// randomReplica identifies this process in leases (creation, destruction, the pool's refill).
func randomReplica() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
