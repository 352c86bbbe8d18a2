package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// An open preview WebSocket (HMR) keeps its sandbox alive past the idle
// timeout although no request passes; once it closes, the sandbox is reaped.
// The reaper is driver-independent, so the fast local driver runs it.
func TestOpenPreviewWebSocketKeepsSandboxAlive(t *testing.T) {
	e := start(t, "local", map[string]string{"SANDBOX_IDLE_TIMEOUT": "2", "SANDBOX_GC_INTERVAL": "0.5"})
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	installWsecho(ctx, t, e, sid)
	port := 20000 + rand.IntN(2000)
	_, err = e.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: sid, Name: "web", Command: fmt.Sprintf("./wsecho -addr 127.0.0.1:%d", port)})
	require.NoError(t, err)
	var purl string
	eventually(t, 10*time.Second, func() bool {
		pv, err := e.sb.GetPreview(ctx, &sandboxdv1.GetPreviewRequest{SessionId: sid})
		if err != nil || !pv.GetAvailable() {
			return false
		}
		purl = pv.GetPreviews()[0].GetUrl()
		return true
	}, "no preview")
	u, err := url.Parse(purl)
	require.NoError(t, err)

	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The capability in the host authorises the upgrade.
	c, _, err := websocket.Dial(wctx, "ws://"+e.app.PreviewAddr()+"/ws", &websocket.DialOptions{Host: u.Host}) //nolint:bodyclose // owned by c
	require.NoError(t, err)
	// Well past the idle timeout plus a sweep, with no traffic at all.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
		require.NoError(t, err, "sandbox reaped while its preview WebSocket was open")
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(t, c.Write(wctx, websocket.MessageText, []byte("still here")))
	_, msg, err := c.Read(wctx)
	require.NoError(t, err)
	require.Equal(t, "still here", string(msg))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))

	eventually(t, 6*time.Second, func() bool {
		_, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
		return code(err) == codes.NotFound
	}, "sandbox not reaped after its WebSocket closed")
}
