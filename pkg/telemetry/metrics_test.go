package telemetry

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

func TestMetricsAreScrapable(t *testing.T) {
	m, err := SetupMetrics(t.Context(), "svc-under-test", "v0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(t.Context()) })

	// An instrument made through the global provider, as otelgrpc and redisotel make theirs.
	c, err := otel.Meter("test").Int64Counter("mgx_test_things", metric.WithDescription("things"))
	require.NoError(t, err)
	c.Add(t.Context(), 3, metric.WithAttributes(attribute.String("kind", "a")))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	stop, err := ServeMetrics(t.Context(), addr, m.Handler)
	require.NoError(t, err)
	t.Cleanup(func() { _ = stop(t.Context()) })

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	page := string(body)
	require.Contains(t, page, `mgx_test_things_total{kind="a"`)
	require.True(t, strings.Contains(page, "go_goroutines"), "runtime collectors registered")
	require.Contains(t, page, `service_name="svc-under-test"`)

	_, err = ServeMetrics(t.Context(), addr, m.Handler)
	require.Error(t, err, "a busy address fails start-up")
}
