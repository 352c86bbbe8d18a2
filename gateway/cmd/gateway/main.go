// Command gateway is MGX's public edge: REST/JSON to gRPC, accounts and
// tokens, event streams over WebSocket/SSE, and preview routing.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mgx-ai/mgx/gateway/internal/app"
	"github.com/mgx-ai/mgx/gateway/internal/config"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/telemetry"
)

var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := pkgconfig.Load[config.Config]()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		return 2
	}
	logger := telemetry.NewLogger(cfg.LogLevel, cfg.LogFormat, "gateway")
	logger.Info("config loaded", "config", pkgconfig.LogValue(cfg))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	flush, err := telemetry.Setup(ctx, "gateway", version)
	if err != nil {
		logger.Error("telemetry", "err", err)
		return 1
	}
	defer func() { _ = flush(context.WithoutCancel(ctx)) }()
	stopMetrics, err := telemetry.StartMetrics(ctx, "gateway", version, cfg.MetricsListen)
	if err != nil {
		logger.Error("metrics", "err", err)
		return 1
	}
	defer func() { _ = stopMetrics(context.WithoutCancel(ctx)) }()

	if err := app.Run(ctx, cfg, logger); err != nil {
		logger.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}
