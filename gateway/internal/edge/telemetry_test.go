package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTelemetryNamesTheServerByItsPublicHost: neither the span nor the request metrics of a request
// carry the Host it was sent with. A preview's host holds its capability (a credential), and any
// client can invent hosts, each of which would otherwise be a metric series of its own.
func TestTelemetryNamesTheServerByItsPublicHost(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	prevT, prevM := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetTracerProvider(prevT); otel.SetMeterProvider(prevM) })

	const capability = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	h := New(Options{
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		API:               http.NotFoundHandler(),
		Console:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "console") }),
		Preview:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "preview") }),
		PreviewHostSuffix: ".preview.localhost",
		ServerName:        "mgx.example.com:8443",
	})
	for _, host := range []string{"p5173-" + capability + ".preview.localhost:8000", "invented-" + strings.Repeat("x", 20) + ".example"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, host)
	}

	var seen []string
	record := func(kv attribute.KeyValue) {
		seen = append(seen, string(kv.Key)+"="+kv.Value.String())
	}
	ended := spans.Ended()
	require.Len(t, ended, 2)
	for _, s := range ended {
		for _, kv := range s.Attributes() {
			record(kv)
		}
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	metrics := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
				for _, dp := range h.DataPoints {
					metrics++
					for _, kv := range dp.Attributes.ToSlice() {
						record(kv)
					}
				}
			}
		}
	}
	require.Positive(t, metrics, "the request metrics were recorded")
	all := strings.Join(seen, "\n")
	require.Contains(t, all, "server.address=mgx.example.com")
	require.NotContains(t, all, capability)
	require.NotContains(t, all, "invented-")
}
