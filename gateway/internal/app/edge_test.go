package app_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mgx-ai/mgx/gateway/internal/store"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// healthOnly serves a real gRPC server with just the health service, in
// the given state, as an upstream for /healthz.
func healthOnly(t *testing.T, st healthpb.HealthCheckResponse_ServingStatus) string {
	t.Helper()
	srv, hs, err := grpcserver.New(grpcserver.Options{InternalToken: "test-internal-token"})
	require.NoError(t, err)
	hs.SetServingStatus("", st)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		agentd   string
		sandboxd string
		want     int
		services map[string]any
	}{
		{
			name: "upstreams down", want: http.StatusServiceUnavailable,
			services: map[string]any{"gateway": "SERVING", "agentd": "UNREACHABLE", "sandboxd": "UNREACHABLE"},
		},
		{
			name:   "all serving",
			agentd: healthOnly(t, healthpb.HealthCheckResponse_SERVING), sandboxd: healthOnly(t, healthpb.HealthCheckResponse_SERVING),
			want:     http.StatusOK,
			services: map[string]any{"gateway": "SERVING", "agentd": "SERVING", "sandboxd": "SERVING"},
		},
		{
			name:   "one not serving",
			agentd: healthOnly(t, healthpb.HealthCheckResponse_SERVING), sandboxd: healthOnly(t, healthpb.HealthCheckResponse_NOT_SERVING),
			want:     http.StatusServiceUnavailable,
			services: map[string]any{"gateway": "SERVING", "agentd": "SERVING", "sandboxd": "NOT_SERVING"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.agentd != "" {
				env["AGENTD_ADDR"], env["SANDBOXD_ADDR"] = tt.agentd, tt.sandboxd
			}
			g := startGateway(t, env)
			r := g.do(req{path: "/healthz"})
			require.Equal(t, tt.want, r.status, "%s", r.body)
			m := r.json(t)
			require.Equal(t, tt.services, m["services"])
			if tt.want == http.StatusOK {
				require.Equal(t, "ok", m["status"])
			} else {
				require.Equal(t, "degraded", m["status"])
			}
		})
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	r := g.do(req{path: "/api/openapi.json"})
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	// What a frontend developer generates a client from is what the gateway says: the document
	// `make generate` commits, unchanged.
	root, err := stacktest.RepoRoot()
	require.NoError(t, err)
	committed, err := os.ReadFile(filepath.Join(root, "proto", "gen", "openapi", "mgx.swagger.json"))
	require.NoError(t, err)
	require.Equal(t, string(committed), string(r.body), "the served OpenAPI document is the committed one, byte for byte")

	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Schema map[string]any `json:"schema"`
			} `json:"responses"`
			Security []any `json:"security"`
		} `json:"paths"`
		Definitions         map[string]any `json:"definitions"`
		SecurityDefinitions map[string]any `json:"securityDefinitions"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	// Every operation states the error body.
	for path, ops := range doc.Paths {
		for method, op := range ops {
			require.Equal(t, "#/definitions/v1ErrorBody", op.Responses["default"].Schema["$ref"], "%s %s", method, path)
		}
	}
	require.Contains(t, doc.Definitions, "v1ErrorBody")
	require.Contains(t, doc.Definitions, "v1ErrorReason")
	for _, scheme := range []string{"bearer", "apiKey", "token"} {
		require.Contains(t, doc.SecurityDefinitions, scheme)
	}
	for path, method := range map[string]string{
		"/api/auth/register":                  "post",
		"/api/auth/login":                     "post",
		"/api/auth/refresh":                   "post",
		"/api/auth/logout":                    "post",
		"/api/auth/me":                        "get",
		"/api/sessions":                       "post",
		"/api/sessions/{id}":                  "delete",
		"/api/sessions/{session_id}/messages": "get",
		"/api/chat/messages/{session_id}":     "get",
		"/api/chat/messages":                  "post",
		"/api/files/{session_id}/tree":        "get",
		"/api/files/{session_id}":             "get",
		"/api/sandbox/launch":                 "post",
		"/api/sandbox/exec":                   "post",
		"/api/sandbox/destroy":                "post",
		"/api/sandbox/destroy_all":            "post",
		"/api/sandbox/preview/{session_id}":   "get",
		"/healthz":                            "get",
	} {
		require.Contains(t, doc.Paths, path)
		require.Contains(t, doc.Paths[path], method, path)
		require.Contains(t, doc.Paths[path][method].Responses, "default", path)
	}
	// Statuses as served.
	for path, want := range map[string]string{
		"/api/auth/register post": "201", "/api/sessions post": "201", "/api/chat/messages post": "201",
		"/api/sandbox/launch post": "201", "/api/sessions/{id} delete": "204", "/api/auth/logout post": "204",
		"/healthz get": "503", "/api/sessions get": "200", "/api/ws/sessions/{session_id} get": "101",
	} {
		p, m, _ := strings.Cut(path, " ")
		require.Contains(t, doc.Paths[p][m].Responses, want, path)
	}
	require.NotContains(t, doc.Paths["/api/auth/register"]["post"].Responses, "200")
	require.NotNil(t, doc.Paths["/api/auth/login"]["post"].Security)
	require.Empty(t, doc.Paths["/api/auth/login"]["post"].Security)
}

func TestRateLimit(t *testing.T) {
	redisURL := stacktest.SharedRedis(t)
	g := startGateway(t, map[string]string{"GATEWAY_RATE_LIMIT": "5", "GATEWAY_RATE_WINDOW": "1h", "GATEWAY_RATE_SYNC_INTERVAL": "5ms",
		"GATEWAY_REDIS_URL": redisURL})
	rdb, err := redisclient.New(t.Context(), redisURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	a := g.register("busy@example.com")
	// synced waits until Redis holds the user's n hits and then one more sync interval, so the
	// limiter has acted on them: the limit is then exact (between syncs a replica may overshoot by
	// what it counted since the last one, as designed). A fixed sleep instead failed on a busy machine.
	synced := func(n int64) {
		stacktest.Eventually(t, 10*time.Second, func() bool {
			win := time.Hour.Milliseconds()
			got, err := rdb.Get(t.Context(), store.KeyRateLimit("user:"+a.id, time.Now().UnixMilli()/win*win)).Int64()
			return err == nil && got >= n
		}, "%d hits synced to Redis", n)
		time.Sleep(10 * time.Millisecond)
	}
	allowed := 1 // the me call of register
	synced(1)
	for {
		r := g.do(req{path: "/api/auth/me", token: a.access})
		if r.status == http.StatusTooManyRequests {
			requireError(t, r, http.StatusTooManyRequests)
			require.NotEmpty(t, r.header.Get("Retry-After"))
			break
		}
		require.Equal(t, http.StatusOK, r.status)
		allowed++
		require.LessOrEqual(t, allowed, 5, "not limited at the limit")
		synced(int64(allowed))
	}
	require.Equal(t, 5, allowed)
	// Another user has a budget of their own.
	b := g.register("calm@example.com")
	require.Equal(t, http.StatusOK, g.do(req{path: "/api/auth/me", token: b.access}).status)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	preflight := func(origin string) response {
		return g.do(req{method: "OPTIONS", path: "/api/sessions", header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type",
		}})
	}
	ok := preflight("http://localhost:3000")
	require.Less(t, ok.status, 300)
	require.Equal(t, "http://localhost:3000", ok.header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, preflight("https://evil.example").header.Get("Access-Control-Allow-Origin"))

	custom := startGateway(t, map[string]string{"GATEWAY_CORS_ORIGINS": "https://app.example,https://admin.example"})
	r := custom.do(req{path: "/healthz", header: map[string]string{"Origin": "https://admin.example"}})
	require.Equal(t, "https://admin.example", r.header.Get("Access-Control-Allow-Origin"))
}

// TestHostileInputs: nothing a client sends may produce a 5xx, and every
// refusal carries a detail.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]string{"GATEWAY_MAX_BODY_BYTES": "4096"})
	a := g.register("hostile@example.com")
	huge := `{"email":"a@b.co","password":"` + strings.Repeat("x", 10000) + `"}`

	tests := []struct {
		name   string
		r      req
		status int
	}{
		{"malformed json", req{method: "POST", path: "/api/auth/login", body: `{"email":`}, 400},
		{"not json", req{method: "POST", path: "/api/auth/login", body: `hello`}, 400},
		{"array body", req{method: "POST", path: "/api/auth/login", body: `[1,2]`}, 400},
		{"wrong types", req{method: "POST", path: "/api/auth/login", body: `{"email":42,"password":true}`}, 400},
		{"unknown field", req{method: "POST", path: "/api/auth/register", body: `{"email":"u@example.com","password":"password1","admin":true}`}, 400},
		{"null byte", req{method: "POST", path: "/api/auth/login", body: "{\"email\":\"a\u0000@b.co\",\"password\":\"x\"}"}, 400},
		{"escaped null byte", req{method: "POST", path: "/api/auth/login", body: `{"email":"a\u0000@b.co","password":"x"}`}, 401},
		{"invalid utf8", req{method: "POST", path: "/api/auth/login", body: []byte("{\"email\":\"\xff\xfe\",\"password\":\"x\"}")}, 400},
		{"huge body", req{method: "POST", path: "/api/auth/login", body: huge}, 413},
		{"huge body chunked", req{method: "POST", path: "/api/auth/register", body: huge, header: map[string]string{"Transfer-Encoding": "chunked"}}, 413},
		{"empty body", req{method: "POST", path: "/api/auth/login", body: ""}, 400},
		{"too long password", req{method: "POST", path: "/api/auth/register", body: `{"email":"l@example.com","password":"` + strings.Repeat("p", 300) + `"}`}, 400},
		{"bad uuid api key", req{method: "DELETE", path: "/api/auth/api_keys/../../etc", token: a.access}, 404},
		{"bad uuid", req{method: "DELETE", path: "/api/auth/api_keys/123", token: a.access}, 400},
		{"unknown path", req{path: "/api/nope", token: a.access}, 404},
		{"wrong method", req{method: "PUT", path: "/api/auth/login", body: `{}`}, 405},
		{"forged user id header", req{path: "/api/auth/me", header: map[string]string{"Grpc-Metadata-X-Mgx-User-Id": a.id}}, 401},
		{"forged internal token", req{path: "/api/auth/me", header: map[string]string{"Grpc-Metadata-X-Mgx-Internal-Token": "test-internal-token"}}, 401},
		{"lone surrogate", req{method: "POST", path: "/api/auth/login", body: `{"email":"\ud800@b.co","password":"x"}`}, 400},
		{"deep nesting", req{method: "POST", path: "/api/auth/login", body: strings.Repeat(`{"a":`, 600) + `1` + strings.Repeat(`}`, 600)}, 400},
		{"numbers as strings", req{method: "POST", path: "/api/auth/api_keys", token: a.access, body: `{"name":{"$gt":""}}`}, 400},
		{"invalid utf8 in query", req{path: "/api/auth/me?x=%ff", token: a.access}, 400},
		{"invalid utf8 in path", req{method: "DELETE", path: "/api/auth/api_keys/%ff%fe", token: a.access}, 400},
		{"bad request id", req{path: "/api/auth/me", token: a.access, header: map[string]string{"X-Request-Id": "a b\tc"}}, 200},
		{"token in query and header", req{path: "/api/auth/me?token=garbage", token: a.access}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := g.do(tt.r)
			require.Less(t, r.status, 500, "body: %s", r.body)
			if tt.status >= 400 {
				if tt.status == 405 {
					require.Equal(t, tt.status, r.status, "%s", r.body)
					return
				}
				requireError(t, r, tt.status)
				return
			}
			require.Equal(t, tt.status, r.status, "%s", r.body)
		})
	}

	t.Run("forged user id does not change identity", func(t *testing.T) {
		b := g.register("victim@example.com")
		r := g.do(req{path: "/api/auth/me", token: a.access, header: map[string]string{
			"Grpc-Metadata-X-Mgx-User-Id": b.id, "X-Mgx-User-Id": b.id,
		}})
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, a.id, r.json(t)["id"])
	})
	t.Run("request id echoed only when valid", func(t *testing.T) {
		r := g.do(req{path: "/healthz", header: map[string]string{"X-Request-Id": "trace-123"}})
		require.Equal(t, "trace-123", r.header.Get("X-Request-Id"))
		r = g.do(req{path: "/healthz", header: map[string]string{"X-Request-Id": "evil value"}})
		require.NotEqual(t, "evil value", r.header.Get("X-Request-Id"))
	})
	t.Run("raw header injection", func(t *testing.T) {
		for _, raw := range []string{
			"GET /api/auth/me HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\x01b\r\n\r\n",
			"GET /api/auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n b\r\n\r\n",
			"GET /api/auth/me?token=%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
			"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}{}{}{",
		} {
			conn, err := net.Dial("tcp", strings.TrimPrefix(g.base, "http://"))
			require.NoError(t, err)
			_, err = conn.Write([]byte(raw))
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			_ = resp.Body.Close()
			require.Less(t, resp.StatusCode, 500)
			require.GreaterOrEqual(t, resp.StatusCode, 400)
			require.Empty(t, resp.Header.Get("Set-Cookie"))
			_ = conn.Close()
		}
	})
	t.Run("upstream down is 503 without internals", func(t *testing.T) {
		m := requireError(t, g.do(req{path: "/api/sessions", token: a.access}), http.StatusServiceUnavailable)
		require.NotContains(t, m["detail"], "127.0.0.1")
	})
}
