// Command gateway-bench measures what the gateway adds: the same agentd
// call made as REST through the gateway and as direct gRPC, latency
// (p50/p99) and throughput from one run, plus WebSocket fan-out latency of
// one session's events to many clients against a direct gRPC subscriber.
// Everything runs on loopback and is bounded in time.
//
//	make build && go run ./gateway/cmd/gateway-bench [-bin bin] [-n 2000] [-c 8] [-d 5s] [-ws 50]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/gateway/internal/bench"
)

func main() {
	var o bench.Options
	flag.StringVar(&o.BinDir, "bin", "bin", "directory with agentd, sandboxd and sandbox-agent (make build)")
	flag.StringVar(&o.RedisServer, "redis-server", "redis-server", "redis-server executable")
	flag.IntVar(&o.N, "n", 2000, "sequential calls per path for latency")
	flag.IntVar(&o.Concurrency, "c", 8, "concurrent callers for throughput")
	flag.DurationVar(&o.Duration, "d", 5*time.Second, "throughput run per path")
	flag.IntVar(&o.WSClients, "ws", 50, "WebSocket clients for fan-out")
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "gateway-bench:", err)
		os.Exit(1)
	}
}

func run(o bench.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Bounded: whatever happens, the bench ends.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return bench.Run(ctx, o, os.Stdout)
}
