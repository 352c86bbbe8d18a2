// Command gateway is MGX's public edge: REST/JSON to gRPC, accounts and
// tokens, event streams over WebSocket/SSE, and preview routing.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mgx-ai/mgx/gateway/internal/app"
	"github.com/mgx-ai/mgx/pkg/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal stops at once
	os.Exit(service.Run(ctx, "gateway", app.New, service.Options{}))
}
