package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Metrics is a service's OpenTelemetry MeterProvider exported in the Prometheus text format.
type Metrics struct {
	// Handler serves the registry (`GET /metrics`).
	Handler http.Handler
	// Shutdown stops the provider; it goes in the shutdown stack next to the tracer's.
	Shutdown func(context.Context) error
}

// SetupMetrics installs the global MeterProvider, read by a Prometheus exporter on a registry of the
// service's own (plus Go runtime and process collectors). Because it is the global provider, the
// instruments otelgrpc and redisotel create — RPC rate, latency and codes, Redis pool and command
// latency — land on the same page as the service's own instruments.
func SetupMetrics(ctx context.Context, serviceName, version string) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: create Prometheus exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(version)),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: build resource: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	otel.SetMeterProvider(mp)
	return &Metrics{
		Handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Shutdown: mp.Shutdown,
	}, nil
}

// ServeMetrics serves h at /metrics on addr (an internal listener: metrics are not part of the
// public edge) until ctx ends. It returns once the listener is bound, so a bad address fails start-up.
func ServeMetrics(ctx context.Context, addr string, h http.Handler) (stop func(context.Context) error, err error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry: metrics listener %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv.Shutdown, nil
}

// StartMetrics installs the metrics provider and serves it on addr; an empty addr turns metrics off
// (instruments then record into the no-op provider). The returned stop shuts the listener and the
// provider down.
func StartMetrics(ctx context.Context, serviceName, version, addr string) (stop func(context.Context) error, err error) {
	if addr == "" {
		return func(context.Context) error { return nil }, nil
	}
	m, err := SetupMetrics(ctx, serviceName, version)
	if err != nil {
		return nil, err
	}
	stopServer, err := ServeMetrics(ctx, addr, m.Handler)
	if err != nil {
		_ = m.Shutdown(ctx)
		return nil, err
	}
	return func(ctx context.Context) error {
		return errors.Join(stopServer(ctx), m.Shutdown(ctx))
	}, nil
}
