// Command sandboxd is the sandbox manager: one long-lived sandbox per
// session, exec, processes, files, previews, idle reaping, reconciliation
// and a warm pool, over gRPC.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mgx-ai/mgx/pkg/service"
	"github.com/mgx-ai/mgx/sandboxd/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal stops at once
	os.Exit(service.Run(ctx, "sandboxd", app.New, service.Options{}))
}
