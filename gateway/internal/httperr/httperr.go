// Package httperr is the gateway's one error funnel on the HTTP side: every
// error a client sees — from grpc-gateway, the upstream services, the auth
// and rate-limit middleware, the stream bridge — is written here as
// `{detail, code, message}` with the HTTP status its gRPC code calls for.
package httperr

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/rpcerr"
)

// MetaRetryAfter is the ErrorInfo metadata key (whole seconds) that becomes
// a Retry-After header.
const MetaRetryAfter = "retry_after_seconds"

// StatusClientClosed is nginx's code for a client that went away; it only
// reaches logs, never the (gone) client.
const StatusClientClosed = 499

// Body is the JSON error body. detail is what the frontend shows; code is
// the gRPC code name, reason the stable machine-readable cause when the
// service gave one.
type Body struct {
	Detail  string `json:"detail"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
}

// HTTPStatus maps a gRPC code to the REST status of the public contract.
// It departs from grpc-gateway's table in one place: DeadlineExceeded is 408,
// because the timeout that reaches clients is the one they set on an exec.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return StatusClientClosed
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusRequestTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
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

// Write answers r with err. A status error keeps its code; any other error is
// an Internal whose cause is logged, not shown.
func (wr Writer) Write(w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if !ok {
		if s, isCtx := rpcerr.FromContext(err); isCtx {
			st = status.Convert(s)
		} else {
			st = status.New(codes.Internal, "internal error")
		}
	}
	httpStatus := HTTPStatus(st.Code())
	b := Body{Code: codeName(st.Code()), Message: st.Message(), Detail: st.Message()}
	if _, fromService := rpcerr.ErrorInfo(st.Err()); !fromService && httpStatus >= 500 {
		// A 5xx that no mgx funnel built comes from gRPC's transport or a
		// panic: its text names internal addresses and causes. Log it, show
		// a generic line.
		b.Message = http.StatusText(httpStatus)
		if st.Code() == codes.Unavailable {
			b.Message = "upstream service unavailable"
		}
		b.Detail = b.Message
	}

	if BodyTooLarge(r.Context()) {
		httpStatus = http.StatusRequestEntityTooLarge
		b = Body{Code: "REQUEST_ENTITY_TOO_LARGE", Message: "request body too large", Detail: "request body too large"}
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == rpcerr.Domain {
				b.Reason = d.GetReason()
			}
			if secs, err := strconv.Atoi(d.GetMetadata()[MetaRetryAfter]); err == nil && secs > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(secs))
			}
		case *errdetails.BadRequest:
			if v := violations(d); v != "" {
				b.Detail = v
			}
		}
	}
	if httpStatus >= 500 && wr.Logger != nil {
		wr.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"status", httpStatus, "grpc_code", st.Code().String(), "err", err)
	}
	if b.Detail == "" {
		b.Detail = http.StatusText(httpStatus)
	}
	if httpStatus == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(w, httpStatus, b)
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

func writeJSON(w http.ResponseWriter, code int, b Body) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(b)
}

// Status writes an error with code and msg; a shortcut for handlers outside
// grpc-gateway.
func (wr Writer) Status(w http.ResponseWriter, r *http.Request, c codes.Code, msg string) {
	wr.Write(w, r, status.Error(c, msg))
}

// GatewayHandler is the runtime.ErrorHandlerFunc of the grpc-gateway mux.
func (wr Writer) GatewayHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	wr.Write(w, r, err)
}

// RoutingHandler is the runtime.RoutingErrorHandlerFunc: unknown paths are
// 404 and known paths with the wrong method 405, in the same body shape.
func (wr Writer) RoutingHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		writeJSON(w, httpStatus, Body{Detail: "method not allowed", Code: "METHOD_NOT_ALLOWED", Message: "method not allowed"})
	case http.StatusBadRequest:
		wr.Status(w, r, codes.InvalidArgument, "bad request")
	default:
		wr.Status(w, r, codes.NotFound, "not found")
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

// MarkTooLarge returns r marked as over its body cap, for a request refused
// on its Content-Length before any read.
func MarkTooLarge(r *http.Request) *http.Request {
	flag := true
	return r.WithContext(context.WithValue(r.Context(), tooLargeKey{}, &flag))
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
