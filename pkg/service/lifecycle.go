package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/shutdown"
)

// closeMargin is the time the closers after the servers (background loops, clients, Redis) get on
// top of ShutdownTimeout, which the servers may use up entirely when a stream never ends.
const closeMargin = 5 * time.Second

// Lifecycle is how every mgx service serves and stops. The service's New builds its parts and
// registers each here, in dependency order: what is registered later may use what came before.
// Its Run is Lifecycle.Run, which starts the servers and background loops and, once ctx ends, stops
// in phases (temporal's frontend and e2b's orchestrator do the same):
//
//  1. drain: every health service reports NOT_SERVING (and Draining is true, which the gateway's
//     /healthz answers 503 on), while everything keeps serving for DrainDelay, so load balancers
//     and probes stop sending calls before any is refused;
//  2. stop: the registered closers run in reverse order. A server stops taking calls and lets those
//     in flight finish until ShutdownTimeout has passed (then it cuts them); background loops stop;
//     clients and Redis close.
type Lifecycle struct {
	log   *slog.Logger
	cfg   pkgconfig.Service
	stack *shutdown.Stack

	mu       sync.Mutex
	starts   []func(errc chan<- error)
	drains   []func()
	stopBy   time.Time // when servers cut what still runs
	draining atomic.Bool
}

// NewLifecycle returns a lifecycle with nothing registered.
func NewLifecycle(log *slog.Logger, cfg pkgconfig.Service) *Lifecycle {
	return &Lifecycle{log: log, cfg: cfg, stack: shutdown.NewStack(log)}
}

// Push registers a closer (a client, Redis, a driver): it runs at stop, before everything
// registered earlier.
func (l *Lifecycle) Push(name string, fn func(context.Context) error) { l.stack.Push(name, fn) }

// OnDrain registers fn to run when draining starts.
func (l *Lifecycle) OnDrain(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drains = append(l.drains, fn)
}

// Draining reports whether the service is draining or stopping.
func (l *Lifecycle) Draining() bool { return l.draining.Load() }

// GRPC registers a gRPC server that serves on lis from Run. Every service registered on srv so far
// is reported SERVING on hs (by its full name, and overall as ""), until draining starts.
func (l *Lifecycle) GRPC(name string, srv *grpc.Server, hs *health.Server, lis net.Listener) {
	for svc := range srv.GetServiceInfo() {
		if svc != healthpb.Health_ServiceDesc.ServiceName {
			hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
		}
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	// Shutdown, not SetServingStatus: it also ignores later updates, so nothing can flip a service
	// back to SERVING while it drains.
	l.OnDrain(hs.Shutdown)
	l.onRun(func(errc chan<- error) {
		go func() {
			if err := srv.Serve(lis); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	})
	l.stack.Push(name, func(ctx context.Context) error {
		ctx, cancel := context.WithDeadline(ctx, l.serversStopBy())
		defer cancel()
		err := shutdown.GracefulStop(ctx, srv)
		if errors.Is(err, shutdown.ErrForcedStop) {
			// Streams (events, log follows) never end on their own; cutting them is the normal end.
			l.log.Info("shutdown: calls still running were cut", "component", name, "after", l.cfg.ShutdownTimeout)
			return nil
		}
		if err != nil {
			_ = lis.Close()
		}
		return err
	})
}

// HTTP registers an HTTP server that serves on lis from Run.
func (l *Lifecycle) HTTP(name string, srv *http.Server, lis net.Listener) {
	l.onRun(func(errc chan<- error) {
		go func() {
			if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	})
	l.stack.Push(name, func(ctx context.Context) error {
		ctx, cancel := context.WithDeadline(ctx, l.serversStopBy())
		defer cancel()
		// Shutdown does not wait for hijacked (WebSocket) connections; their handlers end when
		// what they follow closes after this.
		if err := srv.Shutdown(ctx); err != nil {
			l.log.Info("shutdown: requests still running were cut", "component", name, "after", l.cfg.ShutdownTimeout)
			return srv.Close()
		}
		return nil
	})
}

// Background registers a loop that runs from Run until its closer cancels its context (a reaper,
// the run workers, a rate limiter's sync). A loop that ends with an error before that stops the
// service.
func (l *Lifecycle) Background(name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var started atomic.Bool
	l.onRun(func(errc chan<- error) {
		started.Store(true)
		go func() {
			defer close(done)
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	})
	l.stack.Push(name, func(stopCtx context.Context) error {
		cancel()
		if !started.Load() {
			return nil
		}
		select {
		case <-done:
			return nil
		case <-stopCtx.Done():
			return stopCtx.Err()
		}
	})
}

func (l *Lifecycle) onRun(fn func(errc chan<- error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.starts = append(l.starts, fn)
}

func (l *Lifecycle) serversStopBy() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopBy.IsZero() { // closing without having run: New failed half-way
		return time.Now().Add(l.cfg.ShutdownTimeout)
	}
	return l.stopBy
}

// Close runs every closer without draining: for a New that fails half-way, so what it built is
// released.
func (l *Lifecycle) Close(ctx context.Context) error { return l.stack.Close(ctx) }

// Run serves until ctx ends (or a server or loop fails), then drains and stops.
func (l *Lifecycle) Run(ctx context.Context) error {
	l.mu.Lock()
	starts := l.starts
	l.mu.Unlock()
	errc := make(chan error, len(starts))
	for _, start := range starts {
		start(errc)
	}

	var failed error
	select {
	case <-ctx.Done():
		l.drain(errc)
	case failed = <-errc:
		l.log.Error("a server failed; stopping", "err", failed)
		l.draining.Store(true)
	}

	l.mu.Lock()
	l.stopBy = time.Now().Add(l.cfg.ShutdownTimeout)
	l.mu.Unlock()
	closeCtx, cancel := context.WithTimeout(context.Background(), l.cfg.ShutdownTimeout+closeMargin)
	defer cancel()
	return errors.Join(failed, l.stack.Close(closeCtx))
}

// drain reports NOT_SERVING and keeps serving for DrainDelay, unless a server fails meanwhile.
func (l *Lifecycle) drain(errc <-chan error) {
	l.draining.Store(true)
	l.mu.Lock()
	drains := l.drains
	l.mu.Unlock()
	for _, fn := range drains {
		fn()
	}
	if l.cfg.DrainDelay <= 0 {
		return
	}
	l.log.Info("draining: reporting NOT_SERVING, still serving", "for", l.cfg.DrainDelay)
	t := time.NewTimer(l.cfg.DrainDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case err := <-errc:
		l.log.Error("a server failed while draining", "err", err)
	}
}
