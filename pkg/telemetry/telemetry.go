// Package telemetry sets up OpenTelemetry tracing and the slog logger every
// mgx service uses, so that each log line of a request carries the trace id
// of the spans otelgrpc and redisotel record for it.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Environment variables that switch on the OTLP exporter. All other
// OTEL_* variables (headers, insecure, sampler, resource attributes, batch
// sizes) are read by the SDK and exporter themselves, as the OpenTelemetry
// specification defines.
const (
	EnvOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Setup installs the global TracerProvider and the W3C TraceContext+Baggage
// propagator, and returns the function that flushes and stops them; the
// service skeleton (package service) calls it last, after the app has closed
// everything else, so spans of the shutdown itself are exported.
//
// When OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific variant) is set,
// spans go to an OTLP/gRPC exporter through a batch span processor.
// Otherwise the provider is still a real SDK provider, just with no exporter:
// spans get real trace and span ids, which propagate to other services and
// appear in every log line, so logs of one request can be correlated across
// services even on a laptop with no collector. The cost is creating spans
// nobody exports, which is small next to an RPC.
func Setup(ctx context.Context, serviceName, version string) (shutdown func(context.Context) error, err error) {
	// Later detectors win on conflicts, so OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES (WithFromEnv) override the names passed in,
	// as the specification requires.
	res, err := resource.New(ctx,
		resource.WithAttributes(
			semconv.ServiceName(serviceName),
			semconv.ServiceVersion(version),
		),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: build resource: %w", err)
	}

	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv(EnvOTLPEndpoint) != "" || os.Getenv(EnvOTLPTracesEndpoint) != "" {
		// The exporter connects lazily, so a collector that is down at start
		// does not keep the service from starting; spans are dropped and the
		// SDK reports the export errors through otel's error handler.
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: create OTLP trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)

	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{},
		propagation.Baggage{},
	))

	return tp.Shutdown, nil
}
