// Package httperr is the gateway's one error funnel on the HTTP side: every
// error a client sees — from grpc-gateway, the upstream services, the auth
// and rate-limit middleware, the stream bridges, a stream that fails half-way —
// is answered here as an errorsv1.ErrorBody `{detail, code, message, reason}`
// with the HTTP status its reason calls for (pkg/rpcerr's table). Causes of
// server faults are logged with the request id, never shown.
package httperr

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/mgx-ai/mgx/pkg/requestid"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// bodyJSON is the public API's JSON encoding (snake_case, zero values present), for error bodies.
var bodyJSON = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}

// Answer is what an error becomes at the edge.
type Answer struct {
	Status int
	Body   *errorsv1.ErrorBody
	// RetryAfter is whole seconds for a Retry-After header; 0 means none.
	RetryAfter int
}

// Of is the one conversion of an error into its HTTP answer. A status keeps its reason (the mgx
// ErrorInfo's, else its code's) and the reason gives the HTTP status. The message is shown as it is
// when an mgx funnel built the error or when it is the caller's own mistake (4xx); a server fault
// that no funnel built — gRPC's transport, a panic, a plain error — shows its reason's stable message
// instead, because its text names internal addresses and causes.
func Of(err error) Answer {
	st, ok := rpcerr.Status(err)
	if !ok {
		if s, isCtx := rpcerr.FromContext(err); isCtx {
			st = status.Convert(s)
		} else {
			st = status.Convert(rpcerr.New(errorsv1.ErrorReason_INTERNAL, "", nil))
		}
	}
	return FromStatus(st)
}

// FromStatus is Of for a status (a stream error chunk carries only that).
func FromStatus(st *status.Status) Answer {
	reason := rpcerr.Reason(st.Err())
	a := Answer{Status: rpcerr.HTTPStatus(reason)}
	msg := st.Message()
	if _, fromFunnel := rpcerr.ErrorInfo(st.Err()); (!fromFunnel && a.Status >= 500) || msg == "" {
		msg = rpcerr.PublicMessage(reason)
	}
	a.Body = &errorsv1.ErrorBody{Detail: msg, Code: codeName(rpcerr.Code(reason)), Message: msg, Reason: reason}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if secs, err := strconv.Atoi(d.GetMetadata()[rpcerr.MetaRetryAfter]); err == nil && secs > 0 {
				a.RetryAfter = secs
			}
		case *errdetails.BadRequest:
			if v := violations(d); v != "" {
				a.Body.Detail = v
			}
		}
	}
	return a
}

// codeName renders codes.NotFound as "NOT_FOUND".
func codeName(c codes.Code) string {
	s := c.String()
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// Writer writes errors; Logger receives the causes of 5xx answers.
type Writer struct {
	Logger *slog.Logger
}

// Write answers r with err.
func (wr Writer) Write(w http.ResponseWriter, r *http.Request, err error) {
	a := Of(err)
	if BodyTooLarge(r.Context()) {
		// grpc-gateway reports the failed read of a body over the cap as InvalidArgument.
		a = Of(rpcerr.New(errorsv1.ErrorReason_REQUEST_TOO_LARGE, "", nil))
	}
	if BodyTimedOut(r.Context()) {
		// Likewise for a body that missed its deadline; the rest of it will not be read, so the
		// connection cannot carry another request.
		a = Of(rpcerr.New(errorsv1.ErrorReason_REQUEST_TIMEOUT, "", nil))
		w.Header().Set("Connection", "close")
	}
	wr.logFault(r.Context(), r, a, err)
	if a.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.RetryAfter))
	}
	if a.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(a.Status)
	b, _ := bodyJSON.Marshal(a.Body)
	_, _ = w.Write(append(b, '\n'))
}

// Reason answers r with a new error of reason and msg (empty: the reason's public message); a
// shortcut for handlers outside grpc-gateway.
func (wr Writer) Reason(w http.ResponseWriter, r *http.Request, reason errorsv1.ErrorReason, msg string) {
	wr.Write(w, r, rpcerr.New(reason, msg, nil))
}

func (wr Writer) logFault(ctx context.Context, r *http.Request, a Answer, err error) {
	if a.Status < 500 || wr.Logger == nil {
		return
	}
	attrs := []any{"status", a.Status, "reason", a.Body.GetReason().String(), "request_id", requestid.FromContext(ctx), "err", err}
	if r != nil {
		attrs = append(attrs, "method", r.Method, "path", r.URL.Path)
	}
	wr.Logger.ErrorContext(ctx, "request failed", attrs...)
}

func violations(br *errdetails.BadRequest) string {
	parts := make([]string, 0, len(br.GetFieldViolations()))
	for _, v := range br.GetFieldViolations() {
		if v.GetField() != "" {
			parts = append(parts, v.GetField()+": "+v.GetDescription())
		} else {
			parts = append(parts, v.GetDescription())
		}
	}
	return strings.Join(parts, "; ")
}

// GatewayHandler is the runtime.ErrorHandlerFunc of the grpc-gateway mux.
func (wr Writer) GatewayHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	wr.Write(w, r, err)
}

// StreamErrorHandler is the runtime.StreamErrorHandlerFunc of the grpc-gateway mux: a stream that
// fails after its first chunk ends with an error chunk (see StreamErrorChunk), and its cause is
// logged here like any other.
func (wr Writer) StreamErrorHandler(ctx context.Context, err error) *status.Status {
	st, ok := rpcerr.Status(err)
	if !ok {
		if s, isCtx := rpcerr.FromContext(err); isCtx {
			return status.Convert(s)
		}
		st = status.Convert(rpcerr.New(errorsv1.ErrorReason_INTERNAL, "", nil))
	}
	wr.logFault(ctx, nil, FromStatus(st), err)
	return st
}

// StreamErrorChunk turns the error chunk grpc-gateway writes into a stream (`{"error": <status>}`)
// into `{"error": ErrorBody}`, the shape of every other error; ok is false for anything else.
func StreamErrorChunk(v any) (_ map[string]proto.Message, ok bool) {
	m, isMap := v.(map[string]proto.Message)
	if !isMap || len(m) != 1 {
		return nil, false
	}
	spb, isStatus := m["error"].(*spb.Status)
	if !isStatus {
		return nil, false
	}
	return map[string]proto.Message{"error": FromStatus(status.FromProto(spb)).Body}, true
}

// RoutingHandler is the runtime.RoutingErrorHandlerFunc: unknown paths are
// 404 and known paths with the wrong method 405, in the same body shape.
func (wr Writer) RoutingHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		wr.Reason(w, r, errorsv1.ErrorReason_METHOD_NOT_ALLOWED, "")
	case http.StatusBadRequest:
		wr.Reason(w, r, errorsv1.ErrorReason_INVALID_ARGUMENT, "bad request")
	default:
		wr.Reason(w, r, errorsv1.ErrorReason_NOT_FOUND, "")
	}
}

type tooLargeKey struct{}

// LimitBody caps r's body at n bytes. Reading past the cap fails and marks
// the request, so that Write answers 413 even though grpc-gateway reports
// the failed read as InvalidArgument.
func LimitBody(w http.ResponseWriter, r *http.Request, n int64) *http.Request {
	flag := new(bool)
	r = r.WithContext(context.WithValue(r.Context(), tooLargeKey{}, flag))
	r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, n), exceeded: flag}
	return r
}

// BodyTooLarge reports whether the request's body went past its cap.
func BodyTooLarge(ctx context.Context) bool {
	flag, _ := ctx.Value(tooLargeKey{}).(*bool)
	return flag != nil && *flag
}

type limitedBody struct {
	io.ReadCloser
	exceeded *bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		*b.exceeded = true
	}
	return n, err
}

type bodyTimeoutKey struct{}

// MarkBodyTimeout returns r with a flag for its body's deadline: the reader that enforces the
// deadline sets it, and Write then answers 408 whatever the handler made of the failed read.
func MarkBodyTimeout(r *http.Request) (*http.Request, *bool) {
	flag := new(bool)
	return r.WithContext(context.WithValue(r.Context(), bodyTimeoutKey{}, flag)), flag
}

// BodyTimedOut reports whether the request's body missed its deadline.
func BodyTimedOut(ctx context.Context) bool {
	flag, _ := ctx.Value(bodyTimeoutKey{}).(*bool)
	return flag != nil && *flag
}
