package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/app"
	"github.com/mgx-ai/mgx/agentd/internal/config"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A tool whose engine is missing here — no chromium, no search provider — is taken out of every
// agent's list at start, and the log says which and why; a tool configured wrongly fails the start.
func TestToolsWithoutTheirEngineAreLeftOut(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	env := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
	env["AGENTD_BROWSER_PATH"] = "/nonexistent/chromium"
	env["AGENTD_SEARCH_PROVIDER"] = "none"
	cfg, err := pkgconfig.LoadFrom[config.Config](env)
	require.NoError(t, err)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := app.New(t.Context(), cfg, log)
	require.NoError(t, err)
	require.Contains(t, logs.String(), `msg="tool unavailable: left out of every agent's tool list" tool=preview_check`)
	require.Contains(t, logs.String(), "/nonexistent/chromium not found")
	require.Contains(t, logs.String(), `tool=web_search`)
	// Run under an ended context, it shuts down in order at once: nothing it built outlives the test.
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	_ = a.Run(ended) // the run workers report the ended context; the point is the orderly close

	ad := startAgentd(t, env)
	agents, err := dial(t, ad.addr).agents.ListAgents(as(t, "alice"), &agentdv1.ListAgentsRequest{})
	require.NoError(t, err)
	byName := map[string][]string{}
	for _, ag := range agents.GetAgents() {
		byName[ag.GetName()] = ag.GetTools()
		require.False(t, slices.Contains(ag.GetTools(), "preview_check") || slices.Contains(ag.GetTools(), "web_search"), ag.GetName())
	}
	require.Contains(t, byName["alex"], "process_list")
	require.Contains(t, byName["iris"], "fetch_url")
	require.Contains(t, byName["david"], "python_run")
	require.Contains(t, byName["mike"], "file_search")

	for name, bad := range map[string]map[string]string{
		"browser bounds":  {"AGENTD_BROWSER_MAX_PAGES": "99"},
		"search provider": {"AGENTD_SEARCH_PROVIDER": "brave"},
		"preview URL":     {"SANDBOXD_PREVIEW_URL": "127.0.0.1:8202"},
		"fetch bounds":    {"AGENTD_FETCH_MAX_BYTES": "-1"},
	} {
		t.Run(name, func(t *testing.T) {
			e := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
			for k, v := range bad {
				e[k] = v
			}
			_, err := pkgconfig.LoadFrom[config.Config](e)
			require.Error(t, err, "%v", bad)
		})
	}
}
