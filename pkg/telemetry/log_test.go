package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceHandlerAddsIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(t.Context())) })

	spanCtx, span := tp.Tracer("test").Start(t.Context(), "op")
	defer span.End()
	sc := span.SpanContext()
	require.True(t, sc.IsValid())

	tests := []struct {
		name      string
		logger    func(*slog.Logger) *slog.Logger
		withSpan  bool
		wantTrace bool
	}{
		{"span in context", func(l *slog.Logger) *slog.Logger { return l }, true, true},
		{"no span", func(l *slog.Logger) *slog.Logger { return l }, false, false},
		{"after With", func(l *slog.Logger) *slog.Logger { return l.With("k", "v") }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := tt.logger(slog.New(TraceHandler(slog.NewJSONHandler(&buf, nil))))

			ctx := t.Context()
			if tt.withSpan {
				ctx = spanCtx
			}
			logger.InfoContext(ctx, "hello")

			var rec map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
			if !tt.wantTrace {
				require.NotContains(t, rec, TraceIDKey)
				require.NotContains(t, rec, SpanIDKey)
				return
			}
			require.Equal(t, sc.TraceID().String(), rec[TraceIDKey])
			require.Equal(t, sc.SpanID().String(), rec[SpanIDKey])
		})
	}
}

func TestTraceHandlerIgnoresInvalidSpanContext(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(TraceHandler(slog.NewJSONHandler(&buf, nil)))
	// A non-recording span from the no-op provider has an all-zero id.
	ctx := trace.ContextWithSpanContext(t.Context(), trace.SpanContext{})
	logger.InfoContext(ctx, "hello")
	require.NotContains(t, buf.String(), TraceIDKey)
}

func TestTraceHandlerIsIdempotent(t *testing.T) {
	h := TraceHandler(slog.NewTextHandler(&bytes.Buffer{}, nil))
	require.Equal(t, h, TraceHandler(h))
}

func TestNewLogger(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(t.Context())) })
	ctx, span := tp.Tracer("test").Start(t.Context(), "op")
	defer span.End()

	tests := []struct {
		name         string
		level        string
		format       string
		logDebug     bool
		wantContains []string
		wantEmpty    bool
	}{
		{"json info", "info", "json", false, []string{`"service":"agentd"`, `"trace_id":"` + span.SpanContext().TraceID().String()}, false},
		{"text info", "info", "text", false, []string{"service=agentd", "trace_id=" + span.SpanContext().TraceID().String()}, false},
		{"debug dropped at info", "info", "json", true, nil, true},
		{"debug kept at debug", "debug", "json", true, []string{`"level":"DEBUG"`}, false},
		{"unknown level means info", "chatty", "json", true, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := NewLoggerTo(&buf, tt.level, tt.format, "agentd")
			if tt.logDebug {
				logger.DebugContext(ctx, "msg")
			} else {
				logger.InfoContext(ctx, "msg")
			}
			if tt.wantEmpty {
				require.Empty(t, buf.String())
				return
			}
			for _, s := range tt.wantContains {
				require.Contains(t, buf.String(), s)
			}
		})
	}
}
