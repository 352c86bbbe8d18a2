package app_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// Regression tests of the hostile-user findings (issue 13) that the gateway alone answers.

// TestSlowBodyIsCutOff: a client announcing a body and trickling it (or sending nothing more) gets a
// 408 and its connection closed once GATEWAY_READ_BODY_TIMEOUT has passed, instead of holding the
// connection for as long as it likes; one that never finishes its headers is cut off once
// GATEWAY_READ_HEADER_TIMEOUT has passed.
func TestSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	const deadline = time.Second
	g := startGateway(t, map[string]string{"GATEWAY_READ_BODY_TIMEOUT": deadline.String(), "GATEWAY_READ_HEADER_TIMEOUT": deadline.String()})
	a := g.register("slowbody@example.com")
	addr := strings.TrimPrefix(g.base, "http://")
	tests := []struct {
		name, head string
	}{
		{"anonymous login", "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"},
		{"chunked", "POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"},
		{"headers never finished", "GET /api/auth/me HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n"},
		{"a body nobody reads", "GET /api/auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.access + "\r\nContent-Length: 1000\r\n\r\n{"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer conn.Close()
			start := time.Now()
			_, err = conn.Write([]byte(tt.head))
			require.NoError(t, err)
			// Nothing more is sent. The server must end the exchange by itself, well before this.
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(deadline+5*time.Second)))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
				}
			} else {
				var ne net.Error
				require.False(t, errors.As(err, &ne) && ne.Timeout(), "no answer and the connection still open after %s", time.Since(start))
			}
			// And the connection is closed.
			_, err = br.ReadByte()
			require.Error(t, err)
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection still open after %s", time.Since(start))
			took := time.Since(start)
			require.GreaterOrEqual(t, took, deadline-100*time.Millisecond, "cut before its deadline")
			require.Less(t, took, deadline+3*time.Second, "cut within the deadline (plus scheduling)")
		})
	}
	t.Run("a timely body is served", func(t *testing.T) {
		r := g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": a.email, "password": a.password}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	})
}

// TestAnonymousConnectionCap: connections that presented no credential are capped, the oldest going
// first; signed-in users are not counted, so a flood of idle anonymous connections neither stops a
// user's requests nor survives past the cap.
func TestAnonymousConnectionCap(t *testing.T) {
	t.Parallel()
	const limit = 32
	g := startGateway(t, map[string]string{"GATEWAY_MAX_ANONYMOUS_CONNS": fmt.Sprint(limit)})
	a := g.register("busyuser@example.com")
	addr := strings.TrimPrefix(g.base, "http://")

	// A signed-in user's keep-alive connection, established before the flood.
	user := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	me := func(c *http.Client) int {
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.base+"/api/auth/me", nil)
		require.NoError(t, err)
		hr.Header.Set("Authorization", "Bearer "+a.access)
		resp, err := c.Do(hr)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, me(user))

	flood := make([]net.Conn, 200)
	for i := range flood {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		flood[i] = c
		t.Cleanup(func() { _ = c.Close() })
	}
	// The user's requests go through, on the kept connection and on fresh ones.
	for range 20 {
		require.Equal(t, http.StatusOK, me(user))
		require.Equal(t, http.StatusOK, me(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	}
	// The oldest anonymous connections were closed; the newest ones, up to the cap, are open.
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !errors.As(err, &ne) || !ne.Timeout()
	}
	stacktest.Eventually(t, 5*time.Second, func() bool { return closed(flood[0]) }, "the oldest anonymous connection is closed")
	open := 0
	for _, c := range flood {
		if !closed(c) {
			open++
		}
	}
	require.LessOrEqual(t, open, limit, "no more anonymous connections than the cap stay open")
	require.False(t, closed(flood[len(flood)-1]), "the newest anonymous connection is kept")
}

// TestQueryTokenOnlyOnStreams: ?token= authenticates the browser streams and nothing else; on any
// other route it is refused, even next to a valid header.
func TestQueryTokenOnlyOnStreams(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	a := g.register("urltoken@example.com")
	session := "0b5f7c1e-7a53-4c1a-9d0e-3f1b2c4d5e6f"
	for _, r := range []req{
		{path: "/api/auth/me?token=" + a.access},
		{method: "POST", path: "/api/sessions?token=" + a.access, body: map[string]any{"title": "x"}},
		{method: "POST", path: "/api/auth/api_keys?token=" + a.access, body: map[string]any{"name": "x"}},
		{method: "DELETE", path: "/api/sessions/" + session + "?token=" + a.access},
		{method: "POST", path: "/api/sandbox/exec?token=" + a.access, body: map[string]any{"session_id": session, "command": "id"}},
		{method: "POST", path: "/api/auth/logout?token=" + a.access, body: map[string]any{"refresh_token": a.refresh}},
		{path: "/api/auth/me?token=" + a.access, token: a.access},
	} {
		t.Run(r.method+" "+strings.Split(r.path, "?")[0], func(t *testing.T) {
			m := requireError(t, g.do(r), http.StatusUnauthorized)
			require.Contains(t, m["detail"], "token query parameter")
		})
	}
	// The streams take it: the credential passes (agentd, down here, is what fails).
	for _, path := range []string{"/api/sessions/" + session + "/events", "/api/ws/sessions/" + session} {
		require.Equal(t, http.StatusUnauthorized, g.do(req{path: path}).status, path)
		r := g.do(req{path: path + "?token=" + a.access})
		require.NotEqual(t, http.StatusUnauthorized, r.status, "%s: %s", path, r.body)
	}
	// Nothing was changed through the refused calls: the session and the key were not created.
	require.Empty(t, g.do(req{path: "/api/auth/api_keys", token: a.access}).list(t))
	require.Equal(t, http.StatusOK, g.do(req{path: "/api/auth/me", token: a.access}).status, "nor was the caller logged out")
}

// TestAPIKeysCannotManageKeys: API keys are created and revoked from a signed-in session only, so a
// leaked key cannot mint keys that outlive its own revocation, nor revoke its owner's other keys.
func TestAPIKeysCannotManageKeys(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	a := g.register("keyowner@example.com")
	r := g.do(req{method: "POST", path: "/api/auth/api_keys", token: a.access, body: map[string]any{"name": "ci"}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	secret := r.json(t)["secret"].(string)
	other := g.do(req{method: "POST", path: "/api/auth/api_keys", token: a.access, body: map[string]any{"name": "laptop"}})
	require.Equal(t, http.StatusCreated, other.status)
	otherID := other.json(t)["api_key"].(map[string]any)["id"].(string)

	for name, h := range map[string]map[string]string{
		"bearer": {"Authorization": "Bearer " + secret}, "x-api-key": {"X-Api-Key": secret},
	} {
		t.Run(name, func(t *testing.T) {
			m := requireError(t, g.do(req{method: "POST", path: "/api/auth/api_keys", header: h, body: map[string]any{"name": "child"}}), http.StatusForbidden)
			require.Equal(t, "PERMISSION_DENIED", m["reason"])
			require.Contains(t, m["detail"], "signed-in session")
			requireError(t, g.do(req{method: "DELETE", path: "/api/auth/api_keys/" + otherID, header: h}), http.StatusForbidden)
			// Reading the list stays possible with a key.
			require.Len(t, g.do(req{path: "/api/auth/api_keys", header: h}).list(t), 2)
		})
	}
	require.Len(t, g.do(req{path: "/api/auth/api_keys", token: a.access}).list(t), 2, "no key was minted, none revoked")
}

// TestLogoutRevokesAccessToken: after logout, the access token the call was made with is refused at
// once by the replica that served the logout and within GATEWAY_REVOCATION_CACHE_TTL by the others;
// so is every other access token of the same login, while another login of the same user goes on.
func TestLogoutRevokesAccessToken(t *testing.T) {
	t.Parallel()
	const cacheTTL = 500 * time.Millisecond
	shared := map[string]string{"GATEWAY_REDIS_URL": stacktest.SharedRedis(t), "GATEWAY_REVOCATION_CACHE_TTL": cacheTTL.String()}
	g := startGateway(t, shared)
	replica := startGateway(t, shared)
	a := g.register("leaving@example.com")
	login := func() (access, refresh string) {
		r := g.do(req{method: "POST", path: "/api/auth/login", body: map[string]any{"email": a.email, "password": a.password}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		return r.json(t)["access_token"].(string), r.json(t)["refresh_token"].(string)
	}
	access, refresh := login()
	otherDevice, _ := login()
	// The same login, one rotation later: a second access token of the family.
	rot := g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": refresh}})
	require.Equal(t, http.StatusOK, rot.status)
	sibling, refresh := rot.json(t)["access_token"].(string), rot.json(t)["refresh_token"].(string)
	for _, tok := range []string{access, sibling, otherDevice} {
		require.Equal(t, http.StatusOK, g.do(req{path: "/api/auth/me", token: tok}).status)
		require.Equal(t, http.StatusOK, replica.do(req{path: "/api/auth/me", token: tok}).status, "the replica has seen (and cached) it")
	}

	require.Equal(t, http.StatusNoContent, g.do(req{method: "POST", path: "/api/auth/logout", token: access, body: map[string]any{"refresh_token": refresh}}).status)
	m := requireError(t, g.do(req{path: "/api/auth/me", token: access}), http.StatusUnauthorized)
	require.Equal(t, "TOKEN_INVALID", m["reason"])
	requireError(t, g.do(req{path: "/api/auth/me", token: sibling}), http.StatusUnauthorized)
	start := time.Now()
	stacktest.Eventually(t, 5*time.Second, func() bool {
		return replica.do(req{path: "/api/auth/me", token: access}).status == http.StatusUnauthorized &&
			replica.do(req{path: "/api/auth/me", token: sibling}).status == http.StatusUnauthorized
	}, "the other replica refuses the logged-out tokens")
	require.Less(t, time.Since(start), cacheTTL+time.Second, "within the cache TTL")
	requireError(t, g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": refresh}}), http.StatusUnauthorized)
	require.Equal(t, http.StatusOK, g.do(req{path: "/api/auth/me", token: otherDevice}).status, "another login is not logged out")
	require.Equal(t, http.StatusOK, replica.do(req{path: "/api/auth/me", token: otherDevice}).status)
}

// TestConcurrentRefresh: simultaneous refreshes with one token (several tabs, a retry) all get the
// same new pair, which works; the login survives. A replay after the grace period still revokes the
// whole login, as reuse detection requires.
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	const grace = time.Second
	g := startGateway(t, map[string]string{"GATEWAY_REFRESH_REUSE_GRACE": grace.String()})
	a := g.register("tabs@example.com")
	refresh := a.refresh
	for round := range 10 {
		var (
			wg    sync.WaitGroup
			ready sync.WaitGroup
			go_   = make(chan struct{})
			out   = make([]response, 5)
		)
		for i := range out {
			ready.Add(1)
			wg.Go(func() {
				ready.Done()
				<-go_
				out[i] = g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": refresh}})
			})
		}
		ready.Wait()
		close(go_)
		wg.Wait()
		var pairs []string
		for _, r := range out {
			require.Equal(t, http.StatusOK, r.status, "round %d: every concurrent refresh succeeds: %s", round, r.body)
			m := r.json(t)
			pairs = append(pairs, m["access_token"].(string)+" "+m["refresh_token"].(string))
		}
		require.Len(t, slices.Compact(pairs), 1, "round %d: one new pair for all of them", round)
		next := strings.Fields(pairs[0])
		require.Equal(t, http.StatusOK, g.do(req{path: "/api/auth/me", token: next[0]}).status)
		refresh = next[1]
	}

	// A replay after the grace period is reuse: the family, newest token included, is revoked.
	r := g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": refresh}})
	require.Equal(t, http.StatusOK, r.status)
	newest, newestAccess := r.json(t)["refresh_token"].(string), r.json(t)["access_token"].(string)
	again := g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": refresh}})
	require.Equal(t, http.StatusOK, again.status, "within the grace period: the same pair")
	require.Equal(t, newest, again.json(t)["refresh_token"])
	time.Sleep(grace + 200*time.Millisecond)
	m := requireError(t, g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": refresh}}), http.StatusUnauthorized)
	require.Equal(t, "TOKEN_INVALID", m["reason"])
	requireError(t, g.do(req{method: "POST", path: "/api/auth/refresh", body: map[string]any{"refresh_token": newest}}), http.StatusUnauthorized)
	requireError(t, g.do(req{path: "/api/auth/me", token: newestAccess}), http.StatusUnauthorized)
}

// TestMetricLabelsFromClosedSet: the HTTP metrics' labels do not take the request's Host, so
// invented hosts and preview hosts (which carry session ids) add no series.
func TestMetricLabelsFromClosedSet(t *testing.T) {
	// Not parallel: the metrics provider is process-global.
	metrics := stacktest.Addr(t)
	g := startGateway(t, map[string]string{"GATEWAY_METRICS_LISTEN": metrics, "MGX_PUBLIC_URL": "http://localhost:8000"})
	for i := range 20 {
		for _, host := range []string{
			fmt.Sprintf("evil-%d.example", i),
			fmt.Sprintf("p5173-0b5f7c1e-7a53-4c1a-9d0e-%012d.preview.localhost:%d", i, 8000+i),
		} {
			g.do(req{path: "/api/openapi.json", header: map[string]string{"Host": host}})
			g.do(req{path: "/api/auth/me", header: map[string]string{"Host": host}})
		}
	}
	var page string
	stacktest.Eventually(t, 5*time.Second, func() bool {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page = string(b)
		return strings.Contains(page, "http_server_request_duration")
	}, "the gateway exports HTTP metrics")
	var leaked []string
	for _, line := range strings.Split(page, "\n") {
		if strings.Contains(line, "evil-") || strings.Contains(line, "preview.localhost") {
			leaked = append(leaked, line)
		}
	}
	require.Empty(t, leaked, "series labelled with a client's Host")
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`server_(address|port)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		seen[m[1]+"="+m[2]] = true
	}
	require.Equal(t, map[string]bool{"address=localhost": true, "port=8000": true}, seen, "one server name, the configured one")
}

// openStream starts a streaming request and, when it is answered 200, reads its first line: the stream
// is then open upstream and holds its slot until close is called.
func openStream(t *testing.T, base, method, path, token, body string) (status int, header http.Header, close func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	require.NoError(t, err)
	hr.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(hr) //nolint:bodyclose // closed by the close func returned
	require.NoError(t, err)
	close = func() { cancel(); _ = resp.Body.Close() }
	if resp.StatusCode == http.StatusOK {
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		require.NoError(t, err, "the first line of %s", path)
		require.NotEmpty(t, line)
	}
	return resp.StatusCode, resp.Header, close
}

// TestLongStreamsCountPerUser: streamed commands and followed process logs count against the user's
// stream bound together with event streams (issue 13, item 10): beyond GATEWAY_MAX_STREAMS_PER_USER
// each kind is refused with 429 TOO_MANY_STREAMS and a Retry-After; short reads are not counted;
// other users are untouched; a closed stream frees its slot.
func TestLongStreamsCountPerUser(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"GATEWAY_MAX_STREAMS_PER_USER": "2"})
	a := s.register("long-streams@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	sid := r.json(t)["id"].(string)
	r = s.do(req{method: "POST", path: "/api/sandbox/" + sid + "/processes", token: a.access, body: map[string]any{
		"name": "ticker", "command": "while true; do echo tick; sleep 1; done",
	}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	execBody := fmt.Sprintf(`{"session_id":%q,"command":"echo go; sleep 60","timeout":120}`, sid)
	follow := "/api/sandbox/" + sid + "/processes/ticker/logs?follow=true"
	code, _, closeExec := openStream(t, s.base, http.MethodPost, "/api/sandbox/exec/stream", a.access, execBody)
	require.Equal(t, http.StatusOK, code)
	defer closeExec()
	code, _, closeFollow := openStream(t, s.base, http.MethodGet, follow, a.access, "")
	require.Equal(t, http.StatusOK, code)
	defer closeFollow()

	for name, open := range map[string]func() (int, http.Header, func()){
		"streamed exec": func() (int, http.Header, func()) {
			return openStream(t, s.base, http.MethodPost, "/api/sandbox/exec/stream", a.access, execBody)
		},
		"followed log": func() (int, http.Header, func()) {
			return openStream(t, s.base, http.MethodGet, follow, a.access, "")
		},
		"event stream": func() (int, http.Header, func()) {
			return openStream(t, s.base, http.MethodGet, "/api/sessions/"+sid+"/events?after_seq=0", a.access, "")
		},
	} {
		t.Run("a third "+name+" is refused", func(t *testing.T) {
			code, header, closeIt := open()
			defer closeIt()
			require.Equal(t, http.StatusTooManyRequests, code)
			require.NotEmpty(t, header.Get("Retry-After"))
		})
	}
	t.Run("short reads are not counted", func(t *testing.T) {
		r := s.do(req{path: "/api/sandbox/" + sid + "/processes/ticker/logs", token: a.access})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		r = s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access, body: map[string]any{"session_id": sid, "command": "true"}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	})
	t.Run("other users are untouched", func(t *testing.T) {
		b := s.register("long-streams-other@example.com")
		r := s.do(req{method: "POST", path: "/api/sessions", token: b.access, body: map[string]any{}})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		code, _, closeIt := openStream(t, s.base, http.MethodPost, "/api/sandbox/exec/stream", b.access,
			fmt.Sprintf(`{"session_id":%q,"command":"echo go"}`, r.json(t)["id"].(string)))
		defer closeIt()
		require.Equal(t, http.StatusOK, code)
	})

	closeExec()
	stacktest.Eventually(t, 30*time.Second, func() bool {
		code, _, closeIt := openStream(t, s.base, http.MethodPost, "/api/sandbox/exec/stream", a.access,
			fmt.Sprintf(`{"session_id":%q,"command":"echo again"}`, sid))
		closeIt()
		return code == http.StatusOK
	}, "a closed stream frees its slot")
}

// TestPerUserQuotasOverREST: the services' per-user quotas reach a browser as 429 with a Retry-After
// header and the QUOTA_EXCEEDED reason — sessions held (agentd) and background processes (sandboxd).
func TestPerUserQuotasOverREST(t *testing.T) {
	t.Parallel()
	st := stacktest.StartStack(t, stacktest.Spec{
		NoGateway:   true,
		AgentdEnv:   map[string]string{"AGENTD_MAX_SESSIONS_PER_USER": "1"},
		SandboxdEnv: map[string]string{"SANDBOXD_MAX_PROCESSES_PER_USER": "1"},
	})
	env := st.GatewayEnv()
	env["GATEWAY_RATE_LIMIT"] = "100000"
	g := startGateway(t, env)
	a := g.register("quotas@example.com")
	requireQuota := func(r response, quota string) {
		t.Helper()
		m := requireError(t, r, http.StatusTooManyRequests)
		require.Equal(t, "QUOTA_EXCEEDED", m["reason"], "%s", r.body)
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
		require.Positive(t, retry)
		require.Contains(t, m["detail"], quota)
	}

	r := g.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	sid := r.json(t)["id"].(string)
	requireQuota(g.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}}), "session")

	start := func(name string) response {
		return g.do(req{method: "POST", path: "/api/sandbox/" + sid + "/processes", token: a.access, body: map[string]any{
			"name": name, "command": "sleep 60",
		}})
	}
	r = start("one")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	requireQuota(start("two"), "process")
}
