package telemetry

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys added to every record logged with a span in its context.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// NewLogger returns the service logger writing to stderr: text or json
// format, records below level dropped, a "service" attribute on every record,
// and the trace_id/span_id of the context's span. An unknown level means
// info and an unknown format means text; config.Common.Validate rejects both
// before a service gets here.
func NewLogger(level, format, service string) *slog.Logger {
	return NewLoggerTo(os.Stderr, level, format, service)
}

// NewLoggerTo is NewLogger writing to w (a service run in a test's process logs into the test's
// buffer).
func NewLoggerTo(w io.Writer, level, format, service string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}

	var h slog.Handler
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(TraceHandler(h)).With("service", service)
}

// TraceHandler wraps h so that every record logged with a context holding a
// valid span gets trace_id and span_id attributes. Wrapping an already
// wrapped handler returns it unchanged, so packages that need trace ids (the
// gRPC server's access log) can wrap whatever logger they are given.
//
// Records must be logged with a context (logger.InfoContext(ctx, …) or the
// slog.Logger.Log family) for the ids to appear.
func TraceHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(traceHandler); ok {
		return h
	}
	return traceHandler{h}
}

type traceHandler struct {
	slog.Handler
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		// Clone: the record's attribute storage may be shared with a caller
		// that hands the same record to several handlers.
		r = r.Clone()
		r.AddAttrs(
			slog.String(TraceIDKey, sc.TraceID().String()),
			slog.String(SpanIDKey, sc.SpanID().String()),
		)
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
