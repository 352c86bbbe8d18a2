package server

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// eventStreams counts open StreamEvents calls (a gateway replica shares one per user and session).
var eventStreams, _ = otel.Meter("github.com/mgx-ai/mgx/agentd/server").Int64UpDownCounter(
	"mgx_agentd_event_streams", metric.WithDescription("open event stream subscriptions"))
