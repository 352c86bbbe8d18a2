// Command agentd is the agent runtime: sessions, runs, the agent team and the per-session event log.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mgx-ai/mgx/agentd/internal/app"
	"github.com/mgx-ai/mgx/pkg/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal stops at once
	os.Exit(service.Run(ctx, "agentd", app.New, service.Options{}))
}
