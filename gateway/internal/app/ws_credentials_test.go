package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// TestEventStreamCredentials: a browser WebSocket cannot send an Authorization header, so the event
// stream takes the access token as `?token=` or as the Sec-WebSocket-Protocol value after
// "mgx.bearer" (which the server then selects, never the token); a socket with no credential, or a
// protocol list without the marker, is refused with 401 before any upgrade.
func TestEventStreamCredentials(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("ws-credentials@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	base := fmt.Sprintf("%s/api/ws/sessions/%s", strings.Replace(s.base, "http", "ws", 1), id)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	t.Run("token as a subprotocol streams", func(t *testing.T) {
		c, status, err := wsDial(ctx, base+"?after_seq=0", &websocket.DialOptions{Subprotocols: []string{"mgx.bearer", a.access}})
		require.NoError(t, err, "status %d", status)
		defer func() { _ = c.CloseNow() }()
		require.Equal(t, "mgx.bearer", c.Subprotocol(), "the marker is selected, never the token")
		require.Equal(t, http.StatusCreated, s.do(req{method: "POST", path: "/api/chat/messages", token: a.access,
			body: map[string]any{"session_id": id, "content": "build a hello world page"}}).status)
		evs := readWS(ctx, t, c, func(ev event) bool { return ev.Type == "message" })
		require.Equal(t, id, evs[len(evs)-1].Session)
		require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	})

	t.Run("token in the query still streams", func(t *testing.T) {
		c, status, err := wsDial(ctx, base+"?after_seq=0&token="+a.access, nil)
		require.NoError(t, err, "status %d", status)
		require.Empty(t, c.Subprotocol())
		evs := readWS(ctx, t, c, func(ev event) bool { return ev.Type == "message" })
		require.NotEmpty(t, evs)
		require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	})

	for _, tc := range []struct {
		name      string
		protocols []string
	}{
		{"no credential at all", nil},
		{"the token without the marker", []string{a.access}},
		{"the marker without a token", []string{"mgx.bearer"}},
		{"the marker with a forged token", []string{"mgx.bearer", a.access[:len(a.access)-4] + "AAAA"}},
		{"the token before the marker", []string{a.access, "mgx.bearer"}},
	} {
		t.Run(tc.name+" is 401", func(t *testing.T) {
			_, status, err := wsDial(ctx, base, &websocket.DialOptions{Subprotocols: tc.protocols})
			require.Error(t, err)
			require.Equal(t, http.StatusUnauthorized, status)
		})
	}

	t.Run("the subprotocol is no credential outside a WebSocket handshake", func(t *testing.T) {
		requireError(t, s.do(req{path: "/api/auth/me", header: map[string]string{"Sec-WebSocket-Protocol": "mgx.bearer, " + a.access}}),
			http.StatusUnauthorized)
	})
}
