package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAuthFlow(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	a := g.register("alice@example.com")

	t.Run("register shape", func(t *testing.T) {
		r := g.do(req{method: "POST", path: "/api/auth/register", body: map[string]any{"email": "bob@example.com", "password": "password123"}})
		require.Equal(t, http.StatusCreated, r.status)
		m := r.json(t)
		require.Equal(t, "bearer", m["token_type"])
		require.EqualValues(t, 900, m["expires_in"])
		require.NotEmpty(t, m["access_token"])
		require.NotEmpty(t, m["refresh_token"])
	})
	t.Run("duplicate email, any case", func(t *testing.T) {
		r := g.do(req{method: "POST", path: "/api/auth/register", body: map[string]any{"email": "ALICE@example.com", "password": "password123"}})
		requireError(t, r, http.StatusConflict)
	})
	t.Run("me", func(t *testing.T) {
		r := g.do(req{path: "/api/auth/me", token: a.access})
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, map[string]any{"id": a.id, "email": "alice@example.com", "name": "Test", "credits": float64(100), "plan": "free"}, r.json(t))
	})
	t.Run("login", func(t *testing.T) {
		r := g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": "Alice@Example.com", "password": a.password}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		m := r.json(t)
		require.Equal(t, "bearer", m["token_type"])
		require.NotEmpty(t, m["refresh_token"])
	})
	t.Run("wrong password and unknown email look alike", func(t *testing.T) {
		wrong := requireError(t, g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": a.email, "password": "nope-nope"}}), http.StatusUnauthorized)
		unknown := requireError(t, g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": "who@example.com", "password": "nope-nope"}}), http.StatusUnauthorized)
		require.Equal(t, wrong, unknown)
	})
	t.Run("refresh rotates", func(t *testing.T) {
		r := g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": a.refresh}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		m := r.json(t)
		next := m["refresh_token"].(string)
		require.NotEqual(t, a.refresh, next)
		require.Equal(t, http.StatusOK, g.do(req{path: "/api/auth/me", token: m["access_token"].(string)}).status)
		a.refresh = next
		// And again: rotation chains.
		r = g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": a.refresh}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		a.refresh = r.json(t)["refresh_token"].(string)
	})
	t.Run("logout revokes", func(t *testing.T) {
		requireError(t, g.do(req{method: "POST", path: "/api/auth/logout", body: map[string]any{"refresh_token": a.refresh}}), http.StatusUnauthorized)
		r := g.do(req{method: "POST", path: "/api/auth/logout", token: a.access, body: map[string]any{"refresh_token": a.refresh}})
		require.Equal(t, http.StatusNoContent, r.status, "%s", r.body)
		require.Empty(t, r.body)
		requireError(t, g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": a.refresh}}), http.StatusUnauthorized)
	})
	t.Run("logout cannot revoke another user's token", func(t *testing.T) {
		b := g.register("carol@example.com")
		login := g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": a.email, "password": a.password}})
		require.Equal(t, http.StatusOK, login.status, "%s", login.body)
		r := g.do(req{method: "POST", path: "/api/auth/logout", token: login.json(t)["access_token"].(string), body: map[string]any{"refresh_token": b.refresh}})
		require.Equal(t, http.StatusNoContent, r.status)
		require.Equal(t, http.StatusOK, g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": b.refresh}}).status)
	})
	t.Run("bad credentials", func(t *testing.T) {
		for name, h := range map[string]map[string]string{
			"garbage jwt":  {"Authorization": "Bearer abc.def.ghi"},
			"basic scheme": {"Authorization": "Basic YTpi"},
			"alg none":     {"Authorization": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiaXNzIjoibWd4LWdhdGV3YXkiLCJhdWQiOlsibWd4Il0sImV4cCI6NDEwMjQ0NDgwMH0."},
			"bad api key":  {"X-Api-Key": "mgx_0000000000000000000000000000000_x"},
			"tampered":     {"Authorization": "Bearer " + a.access[:len(a.access)-2] + "xx"},
			"empty bearer": {"Authorization": "Bearer "},
		} {
			r := g.do(req{path: "/api/auth/me", header: h})
			requireError(t, r, http.StatusUnauthorized)
			require.NotEmpty(t, r.header.Get("WWW-Authenticate"), name)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	g := startGateway(t, map[string]string{"GATEWAY_ACCESS_TOKEN_TTL": "1s"})
	a := g.register("expiring@example.com")
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := g.do(req{path: "/api/auth/me", token: a.access})
		if r.status == http.StatusUnauthorized {
			require.Equal(t, "TOKEN_EXPIRED", r.json(t)["reason"])
			break
		}
		require.Equal(t, http.StatusOK, r.status)
		require.True(t, time.Now().Before(deadline), "access token never expired")
		time.Sleep(100 * time.Millisecond)
	}
	// The refresh token still works and gives a fresh access token.
	r := g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": a.refresh}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, http.StatusOK, g.do(req{path: "/api/auth/me", token: r.json(t)["access_token"].(string)}).status)
}

func TestLoginThrottling(t *testing.T) {
	g := startGateway(t, map[string]string{"GATEWAY_LOGIN_MAX_FAILURES": "3", "GATEWAY_LOGIN_MAX_FAILURES_IP": "6"})
	a := g.register("target@example.com")
	login := func(email, pw string) response {
		return g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": email, "password": pw}})
	}
	for range 3 {
		requireError(t, login(a.email, "wrong-password"), http.StatusUnauthorized)
	}
	// Locked: even the right password is refused, with Retry-After.
	r := login(a.email, a.password)
	m := requireError(t, r, http.StatusTooManyRequests)
	require.Equal(t, "LOGIN_THROTTLED", m["reason"])
	require.NotEmpty(t, r.header.Get("Retry-After"))

	// Per IP: three more failures on other accounts exhaust the address.
	for _, e := range []string{"x1@example.com", "x2@example.com", "x3@example.com"} {
		requireError(t, login(e, "wrong-password"), http.StatusUnauthorized)
	}
	b := g.register("innocent@example.com")
	requireError(t, login(b.email, b.password), http.StatusTooManyRequests)
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	a := g.register("scripts@example.com")
	b := g.register("other@example.com")

	r := g.do(req{method: "POST", path: "/api/auth/api_keys", token: a.access, body: map[string]any{"name": "ci"}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	m := r.json(t)
	secret := m["secret"].(string)
	key := m["api_key"].(map[string]any)
	require.True(t, strings.HasPrefix(secret, "mgx_"))

	for name, h := range map[string]map[string]string{
		"bearer":    {"Authorization": "Bearer " + secret},
		"x-api-key": {"X-Api-Key": secret},
	} {
		me := g.do(req{path: "/api/auth/me", header: h})
		require.Equal(t, http.StatusOK, me.status, name)
		require.Equal(t, a.id, me.json(t)["id"])
	}

	list := g.do(req{path: "/api/auth/api_keys", token: a.access})
	require.Equal(t, http.StatusOK, list.status)
	keys := list.list(t)
	require.Len(t, keys, 1)
	require.NotContains(t, string(list.body), secret)
	require.Empty(t, g.do(req{path: "/api/auth/api_keys", token: b.access}).list(t))

	id := key["id"].(string)
	requireError(t, g.do(req{method: "DELETE", path: "/api/auth/api_keys/" + id, token: b.access}), http.StatusNotFound)
	requireError(t, g.do(req{method: "DELETE", path: "/api/auth/api_keys/not-a-uuid", token: a.access}), http.StatusBadRequest)
	del := g.do(req{method: "DELETE", path: "/api/auth/api_keys/" + id, token: a.access})
	require.Equal(t, http.StatusNoContent, del.status)
	require.Empty(t, del.body)
	requireError(t, g.do(req{path: "/api/auth/me", header: map[string]string{"X-Api-Key": secret}}), http.StatusUnauthorized)
}

func TestDemoAccount(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]string{"MGX_DEMO_EMAIL": "demo@mgx.dev", "MGX_DEMO_PASSWORD": "mgx-demo"})
	r := g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": "demo@mgx.dev", "password": "mgx-demo"}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

// TestClientAddress: per-IP throttling keys on the real client. Behind a
// trusted proxy that is the X-Forwarded-For hop the proxy added; otherwise
// the header is the client's claim and ignored, so rotating it evades
// nothing.
func TestClientAddress(t *testing.T) {
	t.Parallel()
	fail := func(g *gateway, email, xff string) response {
		return g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": email, "password": "wrong-password"},
			header: map[string]string{"X-Forwarded-For": xff}})
	}
	t.Run("behind a trusted proxy", func(t *testing.T) {
		g := startGateway(t, map[string]string{"GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8", "GATEWAY_LOGIN_MAX_FAILURES_IP": "2"})
		// The client claims 203.0.113.9; the proxy appended the real peer.
		requireError(t, fail(g, "a@x.example", "203.0.113.9, 198.51.100.1"), http.StatusUnauthorized)
		requireError(t, fail(g, "b@x.example", "203.0.113.10, 198.51.100.1"), http.StatusUnauthorized)
		requireError(t, fail(g, "c@x.example", "198.51.100.1"), http.StatusTooManyRequests)
		requireError(t, fail(g, "c@x.example", "198.51.100.2"), http.StatusUnauthorized)
	})
	t.Run("no trusted proxy", func(t *testing.T) {
		g := startGateway(t, map[string]string{"GATEWAY_LOGIN_MAX_FAILURES_IP": "2"})
		requireError(t, fail(g, "a@x.example", "198.51.100.1"), http.StatusUnauthorized)
		requireError(t, fail(g, "b@x.example", "198.51.100.2"), http.StatusUnauthorized)
		requireError(t, fail(g, "c@x.example", "198.51.100.3"), http.StatusTooManyRequests)
	})
}
