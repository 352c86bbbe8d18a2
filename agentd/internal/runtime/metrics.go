package runtime

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Instruments of the global provider (a no-op until the service installs one).
var (
	meter            = otel.Meter("github.com/mgx-ai/mgx/agentd/runtime")
	runsExecuting, _ = meter.Int64UpDownCounter("mgx_agentd_runs_executing", metric.WithDescription("runs this replica is executing"))
	runsFinished, _  = meter.Int64Counter("mgx_agentd_runs_finished", metric.WithDescription("runs ended by this replica, by final status"))
)
