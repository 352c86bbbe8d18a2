// Command sandboxd is the sandbox manager: one long-lived sandbox per
// session, exec, processes, files, previews, idle reaping, reconciliation
// and a warm pool, over gRPC.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/telemetry"
	"github.com/mgx-ai/mgx/sandboxd/internal/app"
	"github.com/mgx-ai/mgx/sandboxd/internal/config"
)

func main() { os.Exit(run()) }

func run() int {
	cfg, err := pkgconfig.Load[config.Config]()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		return 2
	}
	log := telemetry.NewLogger(cfg.LogLevel, cfg.LogFormat, "sandboxd")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	flush, err := telemetry.Setup(ctx, "sandboxd", "dev")
	if err != nil {
		log.Error("telemetry", "err", err)
		return 1
	}
	defer func() { _ = flush(context.Background()) }()
	stopMetrics, err := telemetry.StartMetrics(ctx, "sandboxd", "dev", cfg.MetricsListen)
	if err != nil {
		log.Error("metrics", "err", err)
		return 1
	}
	defer func() { _ = stopMetrics(context.Background()) }()
	if cfg.UsesDevInternalToken() {
		log.Warn("MGX_INTERNAL_TOKEN is the public development token; set your own in production")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("sandboxd failed to start", "err", err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		log.Error("sandboxd stopped with an error", "err", err)
		return 1
	}
	return 0
}
