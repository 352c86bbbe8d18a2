package app_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// previewOrigin is an HTTP server on a real listener in the place of
// sandboxd's preview server: it reports what reached it, and echoes
// WebSocket messages (a dev server's HMR channel).
func previewOrigin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				return
			}
			defer func() { _ = c.CloseNow() }()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, append([]byte("echo:"+r.Host+":"), msg...)); err != nil {
					return
				}
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]string{
			"host": r.Host, "path": r.URL.RequestURI(), "authorization": r.Header.Get("Authorization"),
			"forwarded_host": r.Header.Get("X-Forwarded-Host"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPreviewRouting(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]string{"SANDBOXD_PREVIEW_URL": previewOrigin(t), "MGX_PUBLIC_URL": "http://localhost:8000"})
	const session = "0b5f7c1e-7a53-4c1a-9d0e-3f1b2c4d5e6f"
	host := "p5173-" + strings.Repeat("a", 52) + ".preview.localhost:8000"

	tests := []struct {
		name     string
		host     string
		path     string
		wantHost string
		wantPath string
	}{
		{"host based", host, "/src/main.ts?token=abc", host, "/src/main.ts?token=abc"},
		{"host based, upper case", strings.ToUpper(host), "/", strings.ToUpper(host), "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.base+tt.path, nil)
			require.NoError(t, err)
			if tt.host != "" {
				hr.Host = tt.host
			}
			// No gateway credential is needed, and one sent is not passed on.
			hr.Header.Set("Authorization", "Bearer secret-of-the-user")
			resp, err := http.DefaultClient.Do(hr)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var got map[string]string
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			if tt.wantHost != "" {
				require.Equal(t, tt.wantHost, got["host"])
			}
			require.Equal(t, tt.wantPath, got["path"])
			require.Empty(t, got["authorization"])
		})
	}

	t.Run("websocket upgrade", func(t *testing.T) {
		c, _, err := wsDial(t.Context(), strings.Replace(g.base, "http", "ws", 1)+"/ws-hmr", &websocket.DialOptions{Host: host})
		require.NoError(t, err)
		defer func() { _ = c.CloseNow() }()
		require.NoError(t, c.Write(t.Context(), websocket.MessageText, []byte("hello")))
		_, msg, err := c.Read(t.Context())
		require.NoError(t, err)
		require.Equal(t, "echo:"+host+":hello", string(msg))
	})

	t.Run("api is not a preview", func(t *testing.T) {
		requireError(t, g.do(req{path: "/api/sessions"}), http.StatusUnauthorized)
	})

	// Sandbox HTML never runs on the API's origin: the old path form is no preview there.
	t.Run("no preview on the API's origin", func(t *testing.T) {
		for _, path := range []string{"/preview/" + session + "/5173/", "/preview/" + session + "/5173/index.html?token=t"} {
			r := g.do(req{path: path})
			require.NotEqual(t, http.StatusOK, r.status, "%s reached the preview upstream: %s", path, r.body)
			require.NotContains(t, string(r.body), `"host"`, "%s reached the preview upstream", path)
		}
	})
}

func TestPreviewUpstreamDown(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	requireError(t, g.do(req{path: "/", header: map[string]string{"Host": "p5173-" + strings.Repeat("a", 52) + ".preview.localhost:8000"}}), http.StatusServiceUnavailable)
}
