package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// TestPreviewEndToEnd: a dev server started in a session's sandbox is
// reachable through the gateway at the URL sandboxd's GetPreview returns,
// authorised by its preview token and then the preview cookie; without
// either, sandboxd refuses it (and the gateway passes the refusal on).
func TestPreviewEndToEnd(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("preview@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)

	port := strconv.Itoa(stacktest.Port(t))
	require.Equal(t, http.StatusOK, s.do(req{method: "POST", path: "/api/sandbox/exec", token: a.access, body: map[string]any{
		"session_id": id, "command": "mkdir -p site && printf 'hello from the sandbox' > site/index.html",
	}}).status)
	start := s.do(req{method: "POST", path: "/api/sandbox/" + id + "/processes", token: a.access, body: map[string]any{
		"session_id": id, "name": "web", "command": "exec busybox httpd -f -p 127.0.0.1:" + port + " -h site",
	}})
	require.Less(t, start.status, 300, "%s", start.body)

	var previewURL string
	require.Eventually(t, func() bool {
		p := s.do(req{path: "/api/sandbox/preview/" + id, token: a.access}).json(t)
		for _, pv := range p["previews"].([]any) {
			pv := pv.(map[string]any)
			if fmt.Sprint(pv["container_port"]) == port {
				previewURL = pv["url"].(string)
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "port %s never showed up as a preview", port)

	u, err := url.Parse(previewURL)
	require.NoError(t, err)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	// The URL's host (p<port>-<session>.preview.localhost:<gateway port>)
	// does not resolve here; dial the gateway and keep the Host header.
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(target *url.URL) (int, string) {
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.base+target.RequestURI(), nil)
		require.NoError(t, err)
		hr.Host = target.Host
		for _, c := range jar.Cookies(target) {
			hr.AddCookie(c)
		}
		resp, err := client.Do(hr)
		require.NoError(t, err)
		defer resp.Body.Close()
		jar.SetCookies(target, resp.Cookies())
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	noToken := *u
	noToken.RawQuery = ""
	status, _ := get(&noToken)
	require.Equal(t, http.StatusUnauthorized, status, "no token, no cookie")

	status, body := get(u)
	if status >= 300 && status < 400 {
		// sandboxd may trade the token for its cookie with a redirect.
		status, body = get(&noToken)
	}
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.True(t, strings.Contains(body, "hello from the sandbox"), body)

	// With the cookie, later requests need no token (asset loads, HMR).
	status, body = get(&noToken)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Contains(t, body, "hello from the sandbox")
}
