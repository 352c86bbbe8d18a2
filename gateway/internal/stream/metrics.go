package stream

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// clients counts connected WebSocket and SSE event-stream clients (a no-op until the service installs
// a provider).
var clients, _ = otel.Meter("github.com/mgx-ai/mgx/gateway/stream").Int64UpDownCounter(
	"mgx_gateway_event_stream_clients", metric.WithDescription("connected WebSocket and SSE event-stream clients"))
