package stack_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// collector is an OTLP/gRPC trace receiver: the real wire protocol the services' exporters speak.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []span
}

type span struct {
	trace, service, name string
	redis                bool
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := span{trace: hex.EncodeToString(sp.GetTraceId()), service: service, name: sp.GetName()}
				for _, kv := range sp.GetAttributes() {
					if strings.HasPrefix(kv.GetKey(), "db.system") && kv.GetValue().GetStringValue() == "redis" {
						s.redis = true
					}
				}
				c.spans = append(c.spans, s)
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// traceOf returns the spans of the first trace that reached every named service and Redis.
func (c *collector) traceOf(services ...string) []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	byTrace := map[string][]span{}
	for _, s := range c.spans {
		byTrace[s.trace] = append(byTrace[s.trace], s)
	}
	for _, spans := range byTrace {
		seen := map[string]bool{}
		redis := false
		for _, s := range spans {
			seen[s.service] = true
			redis = redis || s.redis
		}
		all := redis
		for _, svc := range services {
			all = all && seen[svc]
		}
		if all {
			return spans
		}
	}
	return nil
}

// TestOneTraceAcrossServices: creating a session is one trace through the gateway, agentd (which
// stores the session in Redis) and sandboxd (which provisions the sandbox), with the Redis commands
// as spans, exported over OTLP to a receiver this test runs.
func TestOneTraceAcrossServices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every binary")
	}
	t.Parallel()
	col := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, col)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	// A Redis of the test's own: TestMakeRun proves the launcher's own, and two launchers starting
	// their own at once both reach for port 6379 first.
	redis := stacktest.Redis(t)
	st := startStack(t, map[string]string{
		"GATEWAY_REDIS_URL": redis, "AGENTD_REDIS_URL": redis, "SANDBOXD_REDIS_URL": redis,
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + l.Addr().String(),
		"OTEL_EXPORTER_OTLP_INSECURE": "true",
		"OTEL_BSP_SCHEDULE_DELAY":     "100",
	})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.Equal(t, http.StatusOK, doJSON(t, http.MethodPost, st.base+"/api/auth/login", "",
		map[string]string{"email": "demo@mgx.dev", "password": "mgx-demo"}, &tok))
	require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, st.base+"/api/sessions", tok.AccessToken,
		map[string]string{"title": "traced"}, nil))

	var spans []span
	deadline := time.Now().Add(30 * time.Second)
	for spans == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		spans = col.traceOf("gateway", "agentd", "sandboxd")
	}
	require.NotNil(t, spans, "no single trace spans gateway, agentd, sandboxd and Redis; got %d spans:\n%s", len(col.spans), col.dump())
	names := map[string]bool{}
	for _, s := range spans {
		names[s.service+" "+s.name] = true
	}
	require.True(t, names["agentd mgx.agentd.v1.SessionService/CreateSession"], "agentd's server span: %v", names)
	require.True(t, names["sandboxd mgx.sandboxd.v1.SandboxService/LaunchSandbox"], "sandboxd's server span: %v", names)
	t.Logf("trace of CreateSession: %d spans: %v", len(spans), names)
	st.stop(t)
}

func (c *collector) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	for _, s := range c.spans {
		lines = append(lines, fmt.Sprintf("%s %-8s %s redis=%v", s.trace[:8], s.service, s.name, s.redis))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
