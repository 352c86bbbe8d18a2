package grpcserver_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/internal/testservice"
	"github.com/mgx-ai/mgx/pkg/requestid"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
)

const token = "test-internal-token"

// logBuffer collects JSON log lines written from server goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the decoded records whose msg is msg.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

type env struct {
	cc   *grpc.ClientConn // dials without credentials; add them per call
	logs *logBuffer
}

// start serves the production server on addr ("" = loopback TCP).
func start(t *testing.T, addr string) env {
	t.Helper()
	// otelgrpc records spans with the global provider; an SDK provider makes
	// trace ids real so the access log can be checked for them.
	prev := otel.GetTracerProvider()
	tp := sdktrace.NewTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(t.Context())
	})

	logs := &logBuffer{}
	srv, _, err := grpcserver.New(grpcserver.Options{
		Logger:        slog.New(slog.NewJSONHandler(logs, nil)),
		InternalToken: token,
	})
	require.NoError(t, err)
	testservice.Register(srv)

	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := grpcserver.Listen(addr)
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	target := lis.Addr().String()
	if lis.Addr().Network() == "unix" {
		target = "unix://" + target
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return env{cc: cc, logs: logs}
}

func withToken() grpc.CallOption { return grpc.PerRPCCredentials(authn.TokenCredentials(token)) }

func TestNewRequiresToken(t *testing.T) {
	_, _, err := grpcserver.New(grpcserver.Options{})
	require.ErrorIs(t, err, grpcserver.ErrNoInternalToken)
}

func TestReflectionOptional(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv, _, err := grpcserver.New(grpcserver.Options{InternalToken: token, Reflection: on})
		require.NoError(t, err)
		_, has := srv.GetServiceInfo()["grpc.reflection.v1.ServerReflection"]
		require.Equal(t, on, has)
		_, hasHealth := srv.GetServiceInfo()["grpc.health.v1.Health"]
		require.True(t, hasHealth)
	}
}

func TestHealthWithoutTokenAndUnlogged(t *testing.T) {
	e := start(t, "")
	resp, err := healthpb.NewHealthClient(e.cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	require.Empty(t, e.logs.lines(t, "finished call"))
}

func TestChain(t *testing.T) {
	e := start(t, "")

	tests := []struct {
		name       string
		stream     bool
		token      bool
		user       string
		text       string
		panics     bool
		wantCode   codes.Code
		wantReason errorsv1.ErrorReason
		wantField  string // protovalidate violation field path
	}{
		{name: "no token", text: "hi", wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_MISSING},
		{name: "no token stream", stream: true, text: "hi", wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_MISSING},
		// Auth runs before validation: no schema details for strangers.
		{name: "invalid request without token", text: "", wantCode: codes.Unauthenticated, wantReason: errorsv1.ErrorReason_INTERNAL_TOKEN_MISSING},
		{name: "ok", token: true, user: "user-1", text: "hi", wantCode: codes.OK},
		{name: "ok stream", stream: true, token: true, user: "user-2", text: "hi", wantCode: codes.OK},
		{name: "empty text", token: true, text: "", wantCode: codes.InvalidArgument, wantField: "text"},
		{name: "too long text", token: true, text: strings.Repeat("x", testservice.MaxTextLen+1), wantCode: codes.InvalidArgument, wantField: "text"},
		{name: "empty text stream", stream: true, token: true, text: "", wantCode: codes.InvalidArgument, wantField: "text"},
		{name: "panic", token: true, text: "hi", panics: true, wantCode: codes.Internal, wantReason: errorsv1.ErrorReason_INTERNAL},
		{name: "panic stream", stream: true, token: true, text: "hi", panics: true, wantCode: codes.Internal, wantReason: errorsv1.ErrorReason_INTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.user != "" {
				ctx = authn.WithUser(ctx, tt.user)
			}
			var header metadata.MD
			opts := []grpc.CallOption{grpc.Header(&header)}
			if tt.token {
				opts = append(opts, withToken())
			}
			call := testservice.Echo
			if tt.stream {
				call = testservice.EchoStream
			}
			reply, err := call(ctx, e.cc, testservice.NewRequest(tt.text, tt.panics), opts...)

			st := status.Convert(err)
			require.Equal(t, tt.wantCode, st.Code(), "err: %v", err)
			switch {
			case tt.wantCode == codes.OK:
				require.Equal(t, tt.text, reply.Text)
				require.Equal(t, tt.user, reply.UserID)
				require.True(t, requestid.Valid(reply.RequestID))
				require.Equal(t, []string{reply.RequestID}, header.Get(requestid.MetadataKey),
					"the id the handler saw is echoed to the caller")
			case tt.wantField != "":
				var violations *validate.Violations
				for _, d := range st.Details() {
					if v, ok := d.(*validate.Violations); ok {
						violations = v
					}
				}
				require.NotNil(t, violations, "InvalidArgument carries field violations")
				require.Len(t, violations.GetViolations(), 1)
				require.Equal(t, tt.wantField, violations.GetViolations()[0].GetField().GetElements()[0].GetFieldName())
			default:
				require.Equal(t, tt.wantReason, rpcerr.Reason(err))
			}
			if tt.panics {
				require.Equal(t, "internal error", st.Message(), "panic value must not leak")
			}
		})
	}
}

func TestPanicIsLogged(t *testing.T) {
	e := start(t, "")
	ctx := metadata.AppendToOutgoingContext(t.Context(), requestid.MetadataKey, "req-panic-1")
	_, err := testservice.Echo(ctx, e.cc, testservice.NewRequest("hi", true), withToken())
	require.Equal(t, codes.Internal, status.Code(err))

	panics := e.logs.lines(t, "panic in gRPC handler")
	require.Len(t, panics, 1)
	require.Equal(t, "testservice: asked to panic", panics[0]["panic"])
	require.Contains(t, panics[0]["stack"], "testservice.handle")
	require.Equal(t, "req-panic-1", panics[0]["request_id"])
	require.Equal(t, testservice.EchoMethod, panics[0]["grpc.method"])

	// The access line exists too, with the code the caller got.
	access := e.logs.lines(t, "finished call")
	require.Len(t, access, 1)
	require.Equal(t, "Internal", access[0]["grpc.code"])
	require.Equal(t, "ERROR", access[0]["level"])
}

func TestAccessLog(t *testing.T) {
	e := start(t, "")

	tests := []struct {
		name          string
		sentRequestID string
		wantKept      bool
	}{
		{"caller id kept", "req-abc-123", true},
		{"missing id minted", "", false},
		{"id with spaces replaced", "bad id forged=1", false},
		{"overlong id replaced", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.sentRequestID != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, requestid.MetadataKey, tt.sentRequestID)
			}
			reply, err := testservice.Echo(ctx, e.cc, testservice.NewRequest(tt.name, false), withToken())
			require.NoError(t, err)
			if tt.wantKept {
				require.Equal(t, tt.sentRequestID, reply.RequestID)
			} else {
				require.NotEqual(t, tt.sentRequestID, reply.RequestID)
				require.True(t, requestid.Valid(reply.RequestID))
			}

			var line map[string]any
			for _, l := range e.logs.lines(t, "finished call") {
				if l["request_id"] == reply.RequestID {
					line = l
				}
			}
			require.NotNil(t, line, "access line with the call's request id")
			require.Equal(t, testservice.ServiceName, line["grpc.service"])
			require.Equal(t, "Echo", line["grpc.method"])
			require.Equal(t, "OK", line["grpc.code"])
			require.Contains(t, line, "grpc.time_ms")
			require.Regexp(t, "^[0-9a-f]{32}$", line["trace_id"])
		})
	}
}

func TestServeOnUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "svc.sock")
	e := start(t, "unix://"+sock)
	reply, err := testservice.Echo(t.Context(), e.cc, testservice.NewRequest("over unix", false), withToken())
	require.NoError(t, err)
	require.Equal(t, "over unix", reply.Text)
}
