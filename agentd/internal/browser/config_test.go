package browser

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/config"
)

// agentd embeds Config in its own configuration; it must load from the environment as it is.
func TestConfigFromEnvironment(t *testing.T) {
	type service struct {
		Browser Config
	}
	cfg, err := config.LoadFrom[service](nil)
	require.NoError(t, err)
	require.Equal(t, Config{}.withDefaults(), cfg.Browser, "the env defaults are the code defaults")
	require.NoError(t, cfg.Browser.Validate())

	cfg, err = config.LoadFrom[service](map[string]string{
		"AGENTD_BROWSER_PATH":          "/opt/chromium/chrome",
		"AGENTD_BROWSER_CHECK_TIMEOUT": "45s",
		"AGENTD_BROWSER_MAX_PAGES":     "4",
		"AGENTD_BROWSER_ALLOW_HOSTS":   "preview.example.com,.preview.example.com",
		"AGENTD_BROWSER_DISABLED":      "true",
	})
	require.NoError(t, err)
	require.Equal(t, "/opt/chromium/chrome", cfg.Browser.ExecPath)
	require.Equal(t, 45*time.Second, cfg.Browser.CheckTimeout)
	require.Equal(t, 4, cfg.Browser.MaxPages)
	require.Equal(t, []string{"preview.example.com", ".preview.example.com"}, cfg.Browser.AllowHosts)
	require.True(t, cfg.Browser.Disabled)
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"timeout too short":     {CheckTimeout: 100 * time.Millisecond},
		"wait beyond the check": {CheckTimeout: 5 * time.Second, MaxWait: 5 * time.Second},
		"no pages":              {MaxPages: -1},
		"tiny heap":             {JSHeapMB: 8},
		"huge viewport":         {ViewportWidth: 10000},
		"tiny screenshot bound": {MaxScreenshotBytes: 10},
		"empty allowed host":    {AllowHosts: []string{"a", " "}},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, cfg.Validate(), ErrInvalidConfig)
		})
	}
}
