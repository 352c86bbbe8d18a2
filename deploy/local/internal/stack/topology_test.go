package stack_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// TestStackOnRedisTopologies runs the whole product against Redis Sentinel and Redis Cluster, every
// service on the same deployment: accounts, sessions, a run through the queue to completion, and its
// event log replayed — so every multi-key script keeps its keys in one slot, and the Sentinel URL
// form works end to end. (That a client survives a Sentinel failover is pkg/redisclient's test.)
func TestStackOnRedisTopologies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every binary")
	}
	t.Parallel()
	for name, start := range map[string]func(testing.TB) string{
		"sentinel": stacktest.RedisSentinel,
		"cluster":  stacktest.RedisCluster,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			st := startStack(t, map[string]string{"GATEWAY_REDIS_URL": url, "AGENTD_REDIS_URL": url, "SANDBOXD_REDIS_URL": url})
			require.Contains(t, st.logs.String(), "starting none", "the launcher starts no Redis of its own")

			var tok struct {
				AccessToken string `json:"access_token"`
			}
			require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, st.base+"/api/auth/register", "",
				map[string]string{"email": "topology@mgx.dev", "password": "correct horse battery"}, &tok))
			var s struct {
				ID string `json:"id"`
			}
			require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, st.base+"/api/sessions", tok.AccessToken,
				map[string]string{"title": name}, &s))
			require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, st.base+"/api/chat/messages", tok.AccessToken,
				map[string]string{"session_id": s.ID, "content": "build me a page"}, nil))
			stacktest.Eventually(t, 60*time.Second, func() bool {
				// Within the default rate limit (600 a minute) however long a loaded machine takes.
				time.Sleep(200 * time.Millisecond)
				var r struct {
					Status string `json:"status"`
				}
				return doJSON(t, http.MethodGet, st.base+"/api/sessions/"+s.ID+"/run", tok.AccessToken, nil, &r) == http.StatusOK &&
					r.Status == "completed"
			}, "the run completes on %s", name)
			var msgs []map[string]any
			require.Equal(t, http.StatusOK, doJSON(t, http.MethodGet, st.base+"/api/sessions/"+s.ID+"/messages", tok.AccessToken, nil, &msgs))
			require.Greater(t, len(msgs), 2, "the team answered")
			require.Contains(t, readFirstSSE(t, st.base+"/api/sessions/"+s.ID+"/events?after_seq=0", tok.AccessToken), `"sequence":1`)
			st.stop(t)
		})
	}
}
