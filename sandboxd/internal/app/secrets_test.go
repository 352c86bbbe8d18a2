package app_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// Sandbox code must never read the services' secrets. The local driver runs the agent as a host process,
// so it is the driver that could hand sandboxd's own environment to every command.
func TestLocalSandboxSeesNoServiceSecrets(t *testing.T) {
	secrets := map[string]string{
		"MGX_INTERNAL_TOKEN":  "internal-token-a-sandbox-must-not-see",
		"MGX_DEMO_PASSWORD":   "demo-password-a-sandbox-must-not-see",
		"SANDBOXD_REDIS_URL":  "redis://:redis-password-a-sandbox-must-not-see@127.0.0.1:1/0",
		"GATEWAY_JWT_SECRET":  "jwt-secret-a-sandbox-must-not-see",
		"SOME_OPERATOR_VALUE": "anything-else-of-the-host-a-sandbox-must-not-see",
	}
	for k, v := range secrets {
		t.Setenv(k, v) // sandboxd's own process environment, as in production
	}
	e := start(t, "local", nil)
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)

	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: `env; echo; tr '\0' '\n' < /proc/$PPID/environ`})
	require.NoError(t, err)
	require.EqualValues(t, 0, res.GetExitCode(), res.GetStderr())
	out := res.GetStdout()
	for k, v := range secrets {
		require.NotContains(t, out, v, "%s reached sandbox code", k)
	}
	require.Contains(t, out, "PATH=", "commands still find the host's tools")
	require.Contains(t, out, "MGX_SANDBOX=1")
}

// Preview tokens are signed with a key nothing in a sandbox can derive: not from the internal token,
// which the local driver cannot keep from same-user processes.
func TestPreviewKeyIsNotDerivedFromTheInternalToken(t *testing.T) {
	t.Parallel()
	e := start(t, "local", nil)
	sid := newSession()

	// A token signed the way a key derived from the internal token would sign it.
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("mgx-sandboxd-preview-v1"))
	derived := mac.Sum(nil)
	payload := "t|" + sid + "|3000|" + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	sig := hmac.New(sha256.New, derived)
	sig.Write([]byte(payload))
	forged := base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(sig.Sum(nil))

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(tok string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.app.PreviewAddr()+"/?token="+tok, nil)
		require.NoError(t, err)
		req.Host = fmt.Sprintf("p3000-%s.preview.localhost:8000", sid)
		resp, err := client.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, get(forged))

	// The deployment's real key still signs working links.
	u := e.app.Preview.URL(sid, 3000)
	tok := u[strings.Index(u, "token=")+len("token="):]
	require.Equal(t, http.StatusFound, get(tok))
}
