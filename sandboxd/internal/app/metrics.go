package app

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// observeStore reports the sandbox and warm-pool counts from Redis at each scrape, so every replica
// reports the deployment's totals without keeping its own tally in step.
func observeStore(st *store.Store) (metric.Registration, error) {
	meter := otel.Meter("github.com/mgx-ai/mgx/sandboxd")
	sandboxes, err := meter.Int64ObservableGauge("mgx_sandboxd_sandboxes", metric.WithDescription("sandboxes with a record"))
	if err != nil {
		return nil, err
	}
	pool, err := meter.Int64ObservableGauge("mgx_sandboxd_pool_ready", metric.WithDescription("warm sandboxes waiting to be claimed"))
	if err != nil {
		return nil, err
	}
	return meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if n, err := st.Count(ctx); err == nil {
			o.ObserveInt64(sandboxes, n)
		}
		if n, err := st.PoolSize(ctx); err == nil {
			o.ObserveInt64(pool, n)
		}
		return nil
	}, sandboxes, pool)
}
