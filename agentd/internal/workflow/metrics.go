package workflow

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instruments of the global provider (a no-op until the service installs one).
var (
	meter         = otel.Meter("github.com/mgx-ai/mgx/agentd/workflow")
	llmTokens, _  = meter.Int64Counter("mgx_agentd_llm_tokens", metric.WithDescription("LLM tokens used, by model and direction"))
	llmCostUSD, _ = meter.Float64Counter("mgx_agentd_llm_cost_usd", metric.WithDescription("LLM cost in US dollars, by model"))
	attrInput     = attribute.String("direction", "input")
	attrOutput    = attribute.String("direction", "output")
)

func recordUsage(ctx context.Context, model string, in, out int64, cost float64) {
	m := attribute.String("model", model)
	llmTokens.Add(ctx, in, metric.WithAttributes(m, attrInput))
	llmTokens.Add(ctx, out, metric.WithAttributes(m, attrOutput))
	llmCostUSD.Add(ctx, cost, metric.WithAttributes(m))
}
