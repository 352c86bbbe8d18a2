package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/config"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
)

func TestProviderSelection(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr error
	}{
		{name: "nothing configured: scripted", env: nil, want: config.ProviderScripted},
		{name: "OpenAI key", env: map[string]string{"OPENAI_API_KEY": "sk"}, want: config.ProviderOpenAI},
		{name: "Anthropic key", env: map[string]string{"ANTHROPIC_API_KEY": "ak"}, want: config.ProviderAnthropic},
		{name: "both keys prefer OpenAI", env: map[string]string{"OPENAI_API_KEY": "sk", "ANTHROPIC_API_KEY": "ak"}, want: config.ProviderOpenAI},
		{name: "explicit scripted despite a key", env: map[string]string{"AGENTD_LLM_PROVIDER": "scripted", "OPENAI_API_KEY": "sk"}, want: config.ProviderScripted},
		{name: "openai with a local base URL needs no key", env: map[string]string{"AGENTD_LLM_PROVIDER": "openai", "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, want: config.ProviderOpenAI},
		{name: "anthropic without key", env: map[string]string{"AGENTD_LLM_PROVIDER": "anthropic"}, wantErr: config.ErrMissingKey},
		{name: "unknown provider", env: map[string]string{"AGENTD_LLM_PROVIDER": "gemini"}, wantErr: config.ErrInvalidProvider},
		{name: "bad limit", env: map[string]string{"AGENTD_MAX_STEPS": "0"}, wantErr: config.ErrInvalidLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pkgconfig.LoadFrom[config.Config](tc.env)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, cfg.Provider())
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := pkgconfig.LoadFrom[config.Config](nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8101", cfg.Listen)
	require.Equal(t, "127.0.0.1:8201", cfg.SandboxdAddr)
	require.Equal(t, "redis://127.0.0.1:6379/0", cfg.RedisURL)
	require.Equal(t, 3000, cfg.ScriptedPort)
}
