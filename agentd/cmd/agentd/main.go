// Command agentd is the agent runtime: sessions, runs, the agent team and the per-session event log.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mgx-ai/mgx/agentd/internal/app"
	"github.com/mgx-ai/mgx/agentd/internal/config"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/telemetry"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := pkgconfig.Load[config.Config]()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentd:", err)
		return 2
	}
	log := telemetry.NewLogger(cfg.LogLevel, cfg.LogFormat, "agentd")
	log.Info("starting agentd", "version", app.Version, "config", pkgconfig.LogValue(cfg))
	flush, err := telemetry.Setup(ctx, "agentd", app.Version)
	if err != nil {
		log.Error("telemetry", "err", err)
		return 1
	}
	defer func() { _ = flush(context.Background()) }()
	stopMetrics, err := telemetry.StartMetrics(ctx, "agentd", app.Version, cfg.MetricsListen)
	if err != nil {
		log.Error("metrics", "err", err)
		return 1
	}
	defer func() { _ = stopMetrics(context.Background()) }()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("startup failed", "err", err)
		return 1
	}
	lis, err := grpcserver.Listen(cfg.Listen)
	if err != nil {
		log.Error("startup failed", "err", err)
		return 1
	}
	if err := a.Serve(ctx, lis); err != nil {
		log.Error("agentd stopped with an error", "err", err)
		return 1
	}
	log.Info("agentd stopped")
	return 0
}
