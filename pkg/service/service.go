// Package service is the skeleton every mgx service shares, so the three are built, run and stopped
// the same way. A service's main is
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		context.AfterFunc(ctx, stop) // a second signal stops at once
//		os.Exit(service.Run(ctx, "gateway", app.New, service.Options{}))
//	}
//
// Run loads the configuration, builds the logger, tracing and metrics, builds the app (its `New`,
// the composition root) and runs it until ctx ends; the app's Run serves through a Lifecycle, which
// drains and closes everything in one order. Tests start a service in their own process through
// Start, the first half of Run, so what they test is wired exactly as production is.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/telemetry"
)

// Version is the version of every mgx binary, set at build time:
//
//	go build -ldflags "-X github.com/mgx-ai/mgx/pkg/service.Version=v1.2.3"
var Version = "dev"

// Exit codes of Run.
const (
	ExitOK      = 0
	ExitFailure = 1 // the service failed to start or stopped with an error
	ExitConfig  = 2 // the configuration is invalid: fix the environment
)

// App is a built service. Run serves until ctx ends, then drains and closes everything its New
// built; it is called once.
type App interface {
	Run(ctx context.Context) error
}

// Config is what the skeleton reads from every service's configuration: the shared settings
// (pkgconfig.Common) and the service's own life settings (pkgconfig.Service), both embedded.
type Config interface {
	CommonConfig() pkgconfig.Common
	ServiceConfig() pkgconfig.Service
}

// NewFunc builds a service from its configuration without serving: the composition root.
type NewFunc[C Config, A App] func(ctx context.Context, cfg C, log *slog.Logger) (A, error)

// Options adjusts Run and Start for a service run inside a test's process.
type Options struct {
	// Environ replaces the process environment as the configuration's source.
	Environ map[string]string
	// LogOutput receives the service's log; nil means stderr.
	LogOutput io.Writer
}

// ErrConfig marks a configuration error returned by Start.
var ErrConfig = errors.New("invalid configuration")

// Running is a started service.
type Running[A App] struct {
	// App is the built app (tests reach its parts through it).
	App  A
	log  *slog.Logger
	done chan struct{}
	err  error
}

// Done is closed once the service has stopped (its context ended, it drained and closed everything,
// telemetry flushed).
func (r *Running[A]) Done() <-chan struct{} { return r.done }

// Wait blocks until the service has stopped and returns its error.
func (r *Running[A]) Wait() error {
	<-r.done
	return r.err
}

// Run is a service's whole life; main calls it under signal.NotifyContext and exits with what it
// returns.
func Run[C Config, A App](ctx context.Context, name string, newApp NewFunc[C, A], o Options) int {
	r, err := Start(ctx, name, newApp, o)
	if errors.Is(err, ErrConfig) {
		return ExitConfig
	}
	if err != nil {
		return ExitFailure
	}
	if r.Wait() != nil {
		return ExitFailure
	}
	return ExitOK
}

// Start loads the configuration, sets up logging, tracing and metrics, builds the app and runs it
// in the background until ctx ends. A start failure is logged (a configuration error, before any
// logger exists, is written to the log output as one line) and returned.
func Start[C Config, A App](ctx context.Context, name string, newApp NewFunc[C, A], o Options) (*Running[A], error) {
	out := o.LogOutput
	if out == nil {
		out = os.Stderr
	}
	var cfg C
	var err error
	if o.Environ != nil {
		cfg, err = pkgconfig.LoadFrom[C](o.Environ)
	} else {
		cfg, err = pkgconfig.Load[C]()
	}
	if err != nil {
		_, _ = fmt.Fprintf(out, "%s: %v\n", name, err)
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	common, svc := cfg.CommonConfig(), cfg.ServiceConfig()
	log := telemetry.NewLoggerTo(out, common.LogLevel, common.LogFormat, name)
	log.Info("starting", "version", Version, "config", pkgconfig.LogValue(cfg))
	if common.UsesDevInternalToken() {
		log.Warn("MGX_INTERNAL_TOKEN is the public development token; set your own in production")
	}

	flush, err := telemetry.Setup(ctx, name, Version)
	if err != nil {
		log.Error("start failed: telemetry", "err", err)
		return nil, err
	}
	stopMetrics, err := telemetry.StartMetrics(ctx, name, Version, svc.MetricsListen)
	if err != nil {
		_ = flush(context.Background())
		log.Error("start failed: metrics", "err", err)
		return nil, err
	}
	// Telemetry stops after the app, which closed everything else: spans and metrics of the
	// shutdown itself are still exported.
	stopTelemetry := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := errors.Join(stopMetrics(ctx), flush(ctx)); err != nil {
			log.Warn("telemetry flush", "err", err)
		}
	}
	app, err := newApp(ctx, cfg, log)
	if err != nil {
		stopTelemetry()
		log.Error("start failed", "err", err)
		return nil, err
	}
	r := &Running[A]{App: app, log: log, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = app.Run(ctx)
		stopTelemetry()
		if r.err != nil {
			log.Error("stopped with an error", "err", r.err)
			return
		}
		log.Info("stopped")
	}()
	return r, nil
}
