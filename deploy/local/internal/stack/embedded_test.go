package stack_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/deploy/local/internal/devredis"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// The lead hands Alex one long command, so a replica can be killed while it holds the run's lease.
const takeoverScript = `
agents:
  mike:
    - tool_calls:
        - {name: send_message, args: {to: alex, content: "run the long step"}}
    - tool_calls:
        - {name: reply_to_human, args: {content: "Done."}}
    - tool_calls:
        - {name: end, args: {}}
  alex:
    - tool_calls:
        - {name: sandbox_shell, args: {command: "echo b >> started.txt; sleep 5; echo b >> log.txt"}}
    - tool_calls:
        - {name: send_message, args: {to: mike, content: "done"}}
`

// TestExpiryOnEmbeddedRedis: `make run` on a machine without redis-server runs the services on the
// embedded Redis-protocol server, and everything built on expiry must behave there as on a real
// Redis — a login lockout ends with its window, a rate window ends, and the lease of a run whose
// replica died lapses, so a survivor takes the run over. (Before its TTLs followed the clock, a
// lockout lasted until restart and a killed replica's runs were never resumed. Rate windows are keyed
// by their start, so they end on time either way; their TTL only bounds memory.)
func TestExpiryOnEmbeddedRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every binary")
	}
	t.Parallel()
	red, err := devredis.Start(t.Context(), t.TempDir(), true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = red.Stop(context.Background()) })
	require.Contains(t, red.Kind, "embedded")

	script := filepath.Join(t.TempDir(), "takeover.yaml")
	require.NoError(t, os.WriteFile(script, []byte(takeoverScript), 0o600))
	const (
		lockoutWindow = 3 * time.Second
		rateWindow    = 2 * time.Second
		rateLimit     = 25
	)
	st := stacktest.StartStack(t, stacktest.Spec{
		RedisURL: red.URL,
		Agentd:   2,
		AgentdEnv: map[string]string{
			"AGENTD_SCRIPT_FILE": script, "AGENTD_RUN_LEASE_TTL": "2s",
		},
		GatewayEnv: map[string]string{
			"MGX_DEMO_EMAIL": "demo@mgx.dev", "MGX_DEMO_PASSWORD": "mgx-demo",
			"GATEWAY_LOGIN_MAX_FAILURES": "3", "GATEWAY_LOGIN_FAILURE_WINDOW": lockoutWindow.String(),
			"GATEWAY_RATE_LIMIT": strconv.Itoa(rateLimit), "GATEWAY_RATE_WINDOW": rateWindow.String(),
		},
	})
	base := st.URL()
	login := func(password string) (int, string) {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		code := doJSON(t, http.MethodPost, base+"/api/auth/login", "", map[string]string{"email": "demo@mgx.dev", "password": password}, &tok)
		return code, tok.AccessToken
	}

	t.Run("login lockout window", func(t *testing.T) {
		for range 3 {
			code, _ := login("wrong password")
			require.Equal(t, http.StatusUnauthorized, code)
		}
		locked := time.Now()
		code, _ := login("mgx-demo")
		require.Equal(t, http.StatusTooManyRequests, code, "the account is locked")
		var unlocked time.Time
		stacktest.Eventually(t, lockoutWindow+15*time.Second, func() bool {
			time.Sleep(250 * time.Millisecond) // a few attempts, not a flood the IP's rate limit would answer
			code, _ := login("mgx-demo")
			unlocked = time.Now()
			return code == http.StatusOK
		}, "the demo account logs in again once %s has passed", lockoutWindow)
		require.GreaterOrEqual(t, unlocked.Sub(locked), lockoutWindow/2, "the lock lasted for its window")
	})

	// Another account for the rest, so each part fails on its own.
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, base+"/api/auth/register", "",
		map[string]string{"email": "expiry@mgx.dev", "password": "correct horse battery"}, &reg))
	token := reg.AccessToken

	t.Run("rate window", func(t *testing.T) {
		var limited *http.Response
		for i := 0; i < 4*rateLimit && limited == nil; i++ {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/sessions", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				limited = resp
			} else {
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
		}
		require.NotNil(t, limited, "%d requests in a row meet the limit of %d", 4*rateLimit, rateLimit)
		retry, err := strconv.Atoi(limited.Header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", limited.Header.Get("Retry-After"))
		require.Positive(t, retry)
		require.LessOrEqual(t, retry, int(rateWindow.Seconds())+1)
		stacktest.Eventually(t, rateWindow+15*time.Second, func() bool {
			time.Sleep(200 * time.Millisecond)
			return doJSON(t, http.MethodGet, base+"/api/sessions", token, nil, nil) == http.StatusOK
		}, "requests pass again in the next window")
	})

	t.Run("run lease takeover", func(t *testing.T) {
		var s struct {
			ID string `json:"id"`
		}
		require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, base+"/api/sessions", token, map[string]string{"title": "takeover"}, &s))
		var r struct {
			RunID string `json:"run_id"`
		}
		require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, base+"/api/chat/messages", token,
			map[string]string{"session_id": s.ID, "content": "go"}, &r))
		var victim, survivor *stacktest.Proc
		stacktest.Eventually(t, 60*time.Second, func() bool {
			for i, p := range st.Agentd {
				if executing(p.Log().String())[r.RunID] {
					victim, survivor = p, st.Agentd[1-i]
					return true
				}
			}
			return false
		}, "a replica executes run %s", r.RunID)
		stacktest.Eventually(t, 60*time.Second, func() bool {
			time.Sleep(200 * time.Millisecond) // within the user's rate limit
			var out struct {
				Stdout string `json:"stdout"`
			}
			return doJSON(t, http.MethodPost, base+"/api/sandbox/exec", token,
				map[string]any{"session_id": s.ID, "command": "cat started.txt 2>/dev/null"}, &out) == http.StatusOK && out.Stdout != ""
		}, "the run is inside its long command")
		victim.Kill()

		stacktest.Eventually(t, 60*time.Second, func() bool {
			time.Sleep(200 * time.Millisecond)
			var run struct {
				Status string `json:"status"`
			}
			return doJSON(t, http.MethodGet, base+"/api/sessions/"+s.ID+"/run", token, nil, &run) == http.StatusOK &&
				run.Status == "completed"
		}, "the run completes after its replica was killed")
		require.True(t, executing(survivor.Log().String())[r.RunID], "the surviving replica took run %s over", r.RunID)
	})
}
