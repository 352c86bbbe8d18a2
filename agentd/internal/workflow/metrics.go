package workflow

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

// Instruments of the global provider (a no-op until the service installs one).
var (
	meter         = otel.Meter("github.com/mgx-ai/mgx/agentd/workflow")
	llmTokens, _  = meter.Int64Counter("mgx_agentd_llm_tokens", metric.WithDescription("LLM tokens used, by model and direction"))
	llmCostUSD, _ = meter.Float64Counter("mgx_agentd_llm_cost_usd", metric.WithDescription("LLM cost in US dollars, by model"))
	llmCached, _  = meter.Int64Counter("mgx_agentd_llm_cached_tokens", metric.WithDescription("LLM input tokens read from or written to the prompt cache (part of the input tokens), by model and kind"))
	attrRead      = attribute.String("kind", "read")
	attrWrite     = attribute.String("kind", "write")
	attrInput     = attribute.String("direction", "input")
	attrOutput    = attribute.String("direction", "output")
)

func recordUsage(ctx context.Context, model string, u llm.Usage, cost float64) {
	m := attribute.String("model", model)
	llmTokens.Add(ctx, u.InputTokens, metric.WithAttributes(m, attrInput))
	llmTokens.Add(ctx, u.OutputTokens, metric.WithAttributes(m, attrOutput))
	llmCached.Add(ctx, u.CacheReadTokens, metric.WithAttributes(m, attrRead))
	llmCached.Add(ctx, u.CacheWriteTokens, metric.WithAttributes(m, attrWrite))
	llmCostUSD.Add(ctx, cost, metric.WithAttributes(m))
}
