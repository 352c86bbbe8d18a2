package app_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
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

// Preview capabilities are made with a key nothing in a sandbox can derive: not from the internal
// token, which the local driver cannot keep from same-user processes.
func TestPreviewKeyIsNotDerivedFromTheInternalToken(t *testing.T) {
	t.Parallel()
	e := start(t, "local", nil)
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	grant, err := e.app.Store.PreviewGrant(t.Context(), sid)
	require.NoError(t, err)
	require.NotEmpty(t, grant.Incarnation)

	// A capability made the way a key derived from the internal token would make it, for the
	// sandbox that runs, with everything but the key right.
	key := hmac.New(sha256.New, []byte(token))
	key.Write([]byte("mgx-sandboxd-preview-v1"))
	session := uuid.MustParse(sid)
	exp := uint32(time.Now().Add(time.Hour).Unix())
	fixed := binary.BigEndian.AppendUint16(nil, 3000)
	fixed = binary.BigEndian.AppendUint32(fixed, exp)
	mac := hmac.New(sha256.New, key.Sum(nil))
	mac.Write([]byte("mgx-preview-capability/1\x00"))
	mac.Write(session[:])
	mac.Write(fixed)
	mac.Write([]byte(grant.Incarnation))
	raw := binary.BigEndian.AppendUint32(append([]byte{}, session[:]...), exp)
	raw = append(raw, mac.Sum(nil)[:12]...)
	forged := "p3000-" + base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding).EncodeToString(raw) + ".preview.localhost:8000"

	get := func(host string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.app.PreviewAddr()+"/", nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, get(forged))

	// The deployment's real key makes working links: nothing listens on the port, which only an
	// authorised request gets to find out.
	link, err := e.app.Preview.URL(t.Context(), sid, 3000)
	require.NoError(t, err)
	u, err := url.Parse(link)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadGateway, get(u.Host))
}
