// Command mgx-local is what `make run` starts: the whole product on one machine with embedded defaults
// (Redis, sandbox driver, offline LLM) wherever nothing is configured.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/mgx-ai/mgx/deploy/local/internal/stack"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "mgx-local")
	cfg, err := stack.FromEnv()
	if err != nil {
		log.Error("config", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = stack.Run(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error("stopped with an error", "err", err)
		os.Exit(1)
	}
}
