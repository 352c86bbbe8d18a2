package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// A stopping gateway drains: for GATEWAY_DRAIN_DELAY /healthz answers 503 with the gateway
// NOT_SERVING while the API still serves, and a request already running when the stop began (an
// exec in the session's sandbox) finishes with its answer.
func TestDrain(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"GATEWAY_DRAIN_DELAY": "2s", "GATEWAY_SHUTDOWN_TIMEOUT": "20s"})
	a := s.register("drain@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	require.Equal(t, http.StatusOK, s.do(req{path: "/healthz"}).status)

	type result struct {
		status int
		body   []byte
		err    error
	}
	inFlight := make(chan result, 1)
	go func() {
		body, _ := json.Marshal(map[string]any{"session_id": id, "command": "touch started; sleep 3; echo finished"})
		hr, _ := http.NewRequest(http.MethodPost, s.base+"/api/sandbox/exec", bytes.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+a.access)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{resp.StatusCode, b, err}
	}()
	stacktest.Eventually(t, 10*time.Second, func() bool {
		return s.do(req{path: "/api/files/" + id + "?path=started", token: a.access}).status == http.StatusOK
	}, "the exec is running")

	stopped := make(chan error, 1)
	go func() { stopped <- s.svc.Stop() }()
	stacktest.Eventually(t, 2*time.Second, func() bool {
		return s.do(req{path: "/healthz"}).status == http.StatusServiceUnavailable
	}, "/healthz answers 503 while draining")
	h := s.do(req{path: "/healthz"})
	require.Equal(t, http.StatusServiceUnavailable, h.status)
	require.Equal(t, "NOT_SERVING", h.json(t)["services"].(map[string]any)["gateway"], "%s", h.body)
	me := s.do(req{path: "/api/auth/me", token: a.access})
	require.Equal(t, http.StatusOK, me.status, "the API still serves during the drain window: %s", me.body)

	got := <-inFlight
	require.NoError(t, got.err)
	require.Equal(t, http.StatusOK, got.status, "the request in flight finished: %s", got.body)
	var out struct {
		Stdout string `json:"stdout"`
	}
	require.NoError(t, json.Unmarshal(got.body, &out))
	require.Equal(t, "finished\n", out.Stdout)
	require.NoError(t, <-stopped)
}

// A stopping gateway ends its event streams as its shutdown begins: an SSE response ends (the
// browser's EventSource reconnects with Last-Event-ID) and a WebSocket is closed with 1012, service
// restart (the console reconnects with after_seq). Before, SSE responses held the shutdown for its
// whole timeout and WebSockets were cut without a close frame.
func TestStopEndsEventStreams(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = 2 * time.Minute
	s := startStack(t, map[string]string{"GATEWAY_DRAIN_DELAY": "0s", "GATEWAY_SHUTDOWN_TIMEOUT": shutdownTimeout.String()})
	a := s.register("drain-streams@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)

	ctx, cancel := context.WithTimeout(t.Context(), shutdownTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/sessions/"+id+"/events", nil)
	require.NoError(t, err)
	hr.Header.Set("Authorization", "Bearer "+a.access)
	hr.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sse := bufio.NewReader(resp.Body)
	line, err := sse.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "retry: 1000\n", line, "the stream is open")

	ws, status, err := wsDial(ctx, strings.Replace(s.base, "http", "ws", 1)+"/api/ws/sessions/"+id+"?after_seq=0",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + a.access}}})
	require.NoError(t, err, "status %d", status)
	defer func() { _ = ws.CloseNow() }()
	wsClosed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				wsClosed <- err
				return
			}
		}
	}()

	stopped := make(chan error, 1)
	go func() { stopped <- s.svc.Stop() }()

	_, err = io.Copy(io.Discard, sse)
	require.NoError(t, err, "the SSE response ends cleanly (EOF), so EventSource reconnects")
	require.NoError(t, ctx.Err(), "the SSE response ended with the shutdown, not at the test's deadline")
	require.Equal(t, websocket.StatusServiceRestart, websocket.CloseStatus(<-wsClosed), "the WebSocket says why it closes")
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(shutdownTimeout / 2):
		t.Fatal("the gateway's stop waited on its event streams")
	}
}
