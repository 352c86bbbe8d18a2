package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// TestPreviewEndToEnd: a dev server started in a session's sandbox is reachable through the
// gateway at the URL GetPreview returns, with nothing but that URL — no cookie, no header, no token
// exchange: the capability in its host name opens the page. A forged one opens nothing, a rotation
// replaces the URL, and deleting the session kills it.
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
	require.Regexp(t, `^p`+port+`-[a-z2-7]{52}\.preview\.localhost:[0-9]+$`, u.Host)
	require.Equal(t, "/", u.RequestURI(), "nothing but the host carries the credential")
	// The URL's host does not resolve here (browsers resolve *.localhost themselves); dial the
	// gateway and keep the Host header.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(host, path string) (int, string) {
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.base+path, nil)
		require.NoError(t, err)
		hr.Host = host
		resp, err := client.Do(hr)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Empty(t, resp.Cookies(), "no cookie is set")
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	status, body := get(u.Host, "/")
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Contains(t, body, "hello from the sandbox")
	status, body = get(u.Host, "/index.html")
	require.Equal(t, http.StatusOK, status, "%s", body)

	label, rest, _ := strings.Cut(u.Host, ".")
	// One character in the middle of the MAC (the last one also holds unused bits).
	forged := label[:len(label)-3] + map[bool]string{true: "b", false: "a"}[label[len(label)-3] == 'a'] + label[len(label)-2:] + "." + rest
	status, _ = get(forged, "/")
	require.Equal(t, http.StatusUnauthorized, status, "a forged capability")

	// Only the owner rotates; the old URL stops working, the new one works.
	other := s.register("intruder@example.com")
	requireError(t, s.do(req{method: "POST", path: "/api/sandbox/preview/" + id + "/rotate", token: other.access, body: map[string]any{}}), http.StatusNotFound)
	status, _ = get(u.Host, "/")
	require.Equal(t, http.StatusOK, status, "another user cannot revoke the owner's preview")
	rot := s.do(req{method: "POST", path: "/api/sandbox/preview/" + id + "/rotate", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusOK, rot.status, "%s", rot.body)
	var fresh string
	for _, pv := range rot.json(t)["previews"].([]any) {
		if pv := pv.(map[string]any); fmt.Sprint(pv["container_port"]) == port {
			fresh = pv["url"].(string)
		}
	}
	require.NotEmpty(t, fresh)
	require.NotEqual(t, previewURL, fresh)
	status, _ = get(u.Host, "/")
	require.Equal(t, http.StatusUnauthorized, status, "the rotated URL is revoked")
	fu, err := url.Parse(fresh)
	require.NoError(t, err)
	status, body = get(fu.Host, "/")
	require.Equal(t, http.StatusOK, status, "%s", body)

	// Deleting the session destroys its sandbox, and with it every URL of it.
	require.Equal(t, http.StatusNoContent, s.do(req{method: "DELETE", path: "/api/sessions/" + id, token: a.access}).status)
	status, _ = get(fu.Host, "/")
	require.Equal(t, http.StatusUnauthorized, status)
}
