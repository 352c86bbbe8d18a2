package reaper

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// reclaimed counts idle sandboxes this replica destroyed (a no-op until the service installs a provider).
var reclaimed, _ = otel.Meter("github.com/mgx-ai/mgx/sandboxd/reaper").Int64Counter(
	"mgx_sandboxd_reaper_reclaimed", metric.WithDescription("idle sandboxes reclaimed by the reaper"))
