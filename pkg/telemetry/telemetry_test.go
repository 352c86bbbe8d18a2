package telemetry

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// restoreGlobals undoes Setup's global installs so tests stay independent.
func restoreGlobals(t *testing.T) {
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
	})
}

func TestSetupWithoutExporterStillMintsTraceIDs(t *testing.T) {
	restoreGlobals(t)
	t.Setenv(EnvOTLPEndpoint, "")
	t.Setenv(EnvOTLPTracesEndpoint, "")

	shutdown, err := Setup(t.Context(), "agentd", "test")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, shutdown(context.WithoutCancel(t.Context()))) })

	ctx, span := otel.Tracer("test").Start(t.Context(), "op")
	require.True(t, span.SpanContext().IsValid())
	span.End()

	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	require.Contains(t, carrier, "traceparent")
	require.Contains(t, carrier["traceparent"], span.SpanContext().TraceID().String())
}

// collector is a minimal OTLP trace receiver.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	got chan *coltracepb.ExportTraceServiceRequest
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.got <- req
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestSetupExportsOverOTLP(t *testing.T) {
	restoreGlobals(t)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	c := &collector{got: make(chan *coltracepb.ExportTraceServiceRequest, 16)}
	coltracepb.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	t.Setenv(EnvOTLPEndpoint, "http://"+lis.Addr().String())
	t.Setenv(EnvOTLPTracesEndpoint, "")
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_SERVICE_NAME", "")

	shutdown, err := Setup(t.Context(), "sandboxd", "v1.2.3")
	require.NoError(t, err)

	_, span := otel.Tracer("test").Start(t.Context(), "exported-op")
	traceID := span.SpanContext().TraceID()
	span.End()

	// Shutdown flushes the batch processor, so the span must have arrived
	// by the time it returns.
	require.NoError(t, shutdown(t.Context()))

	var req *coltracepb.ExportTraceServiceRequest
	select {
	case req = <-c.got:
	default:
		t.Fatal("collector received nothing after shutdown flushed")
	}
	rs := req.GetResourceSpans()
	require.NotEmpty(t, rs)

	attrs := map[string]string{}
	for _, kv := range rs[0].GetResource().GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	require.Equal(t, "sandboxd", attrs["service.name"])
	require.Equal(t, "v1.2.3", attrs["service.version"])

	spans := rs[0].GetScopeSpans()[0].GetSpans()
	require.Len(t, spans, 1)
	require.Equal(t, "exported-op", spans[0].GetName())
	require.Equal(t, traceID[:], spans[0].GetTraceId())
}
