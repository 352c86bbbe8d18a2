package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/gateway/internal/app"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, stacktest.Binaries("sandboxd", "sandbox-agent", "agentd"))
}

// gateway is a gateway running in the test's process, on a real loopback listener.
type gateway struct {
	t    *testing.T
	base string
	svc  *stacktest.Service[*app.App]
}

// deadAddr is a loopback port nothing listens on: upstream calls fail fast
// with Unavailable.
func deadAddr(t *testing.T) string { return stacktest.Addr(t) }

// startGateway starts the gateway through the skeleton its main runs, with
// env on top of test defaults, and serves it until the test ends.
func startGateway(t *testing.T, env map[string]string) *gateway {
	t.Helper()
	vars := map[string]string{
		"GATEWAY_LISTEN":           "127.0.0.1:0",
		"GATEWAY_REDIS_URL":        stacktest.SharedRedis(t),
		"AGENTD_ADDR":              deadAddr(t),
		"SANDBOXD_ADDR":            deadAddr(t),
		"GATEWAY_JWT_SECRET":       strings.Repeat("s", 32),
		"MGX_INTERNAL_TOKEN":       "test-internal-token",
		"GATEWAY_RATE_LIMIT":       "100000",
		"MGX_LOG_LEVEL":            "info",
		"SANDBOXD_PREVIEW_URL":     "http://" + deadAddr(t),
		"GATEWAY_DRAIN_DELAY":      "0s",
		"GATEWAY_SHUTDOWN_TIMEOUT": "5s",
	}
	maps.Copy(vars, env)
	svc := stacktest.InProcess(t, "gateway", app.New, vars)
	return &gateway{t: t, base: "http://" + svc.App.Addr(), svc: svc}
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

func (r response) list(t *testing.T) []any {
	t.Helper()
	var l []any
	require.NoError(t, json.Unmarshal(r.body, &l), "body: %s", r.body)
	return l
}

// req describes one HTTP request.
type req struct {
	method, path, token string
	body                any // marshalled as JSON; a string or []byte is sent raw
	header              map[string]string
}

func (g *gateway) do(r req) response {
	g.t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(g.t, err)
		body = bytes.NewReader(raw)
	}
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	hr, err := http.NewRequestWithContext(g.t.Context(), method, g.base+r.path, body)
	require.NoError(g.t, err)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		if http.CanonicalHeaderKey(k) == "Host" {
			hr.Host = v // net/http sends Request.Host, never a Host header
			continue
		}
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(g.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(g.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// account is a registered user with its tokens.
type account struct {
	email, password     string
	access, refresh, id string
}

func (g *gateway) register(email string) account {
	g.t.Helper()
	a := account{email: email, password: "correct horse battery"}
	r := g.do(req{method: "POST", path: "/api/auth/register", body: map[string]any{"email": email, "password": a.password, "name": "Test"}})
	require.Equal(g.t, http.StatusCreated, r.status, "%s", r.body)
	m := r.json(g.t)
	a.access, a.refresh = m["access_token"].(string), m["refresh_token"].(string)
	me := g.do(req{path: "/api/auth/me", token: a.access})
	require.Equal(g.t, http.StatusOK, me.status, "%s", me.body)
	a.id = me.json(g.t)["id"].(string)
	return a
}

// requireError checks an error answer's status and body shape.
func requireError(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	m := r.json(t)
	require.NotEmpty(t, m["detail"], "body: %s", r.body)
	require.Contains(t, m, "code")
	require.Contains(t, m, "message")
	require.NotEmpty(t, m["reason"], "every error names its reason: %s", r.body)
	require.NotEqual(t, "ERROR_REASON_UNSPECIFIED", m["reason"], "body: %s", r.body)
	return m
}
