package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/config"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
)

func TestAutoProviderChoice(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		want, why string
	}{
		{name: "nothing", want: config.ProviderScripted, why: "no LLM key"},
		{name: "a base URL alone is a local OpenAI-compatible server", env: map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"},
			want: config.ProviderOpenAI, why: "OPENAI_BASE_URL"},
		{name: "an Anthropic key wins over a bare base URL", env: map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "ANTHROPIC_API_KEY": "ak"},
			want: config.ProviderAnthropic, why: "ANTHROPIC_API_KEY"},
		{name: "an OpenAI key", env: map[string]string{"OPENAI_API_KEY": "sk", "ANTHROPIC_API_KEY": "ak"}, want: config.ProviderOpenAI, why: "OPENAI_API_KEY"},
		{name: "explicit", env: map[string]string{"AGENTD_LLM_PROVIDER": "scripted", "OPENAI_BASE_URL": "http://x"}, want: config.ProviderScripted, why: "AGENTD_LLM_PROVIDER=scripted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pkgconfig.LoadFrom[config.Config](tc.env)
			require.NoError(t, err)
			got, why := cfg.ProviderChoice()
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want, cfg.Provider())
			require.Contains(t, why, tc.why)
		})
	}
}

func TestLLMSettings(t *testing.T) {
	cfg, err := pkgconfig.LoadFrom[config.Config](nil)
	require.NoError(t, err)
	require.Zero(t, cfg.LLMMaxTokens, "each model's own cap unless overridden")
	require.Equal(t, 2, cfg.LLMMaxContinuations)
	require.True(t, cfg.LLMPromptCache)
	require.Equal(t, llm.RetryPolicy{MaxRetries: 3, BaseDelay: time.Second, MaxDelay: 30 * time.Second, MaxRetryAfter: 2 * time.Minute}, cfg.RetryPolicy())
	_, known := cfg.Pricing().For("llama3")
	require.False(t, known)

	cfg, err = pkgconfig.LoadFrom[config.Config](map[string]string{
		"AGENTD_LLM_PRICES": "llama3=0.1/0.2", "AGENTD_PRICE_INPUT_PER_MTOK": "1", "AGENTD_PRICE_OUTPUT_PER_MTOK": "2",
		"AGENTD_LLM_COMPLETION_TOKENS_MODELS": "^qwq", "AGENTD_LLM_MAX_OUTPUT_TOKENS": "64000",
	})
	require.NoError(t, err)
	price, _ := cfg.Pricing().For("llama3:70b")
	require.Equal(t, llm.Price{InputPerMTok: 0.1, OutputPerMTok: 0.2}, price)
	price, known = cfg.Pricing().For("mistral")
	require.True(t, known)
	require.Equal(t, llm.Price{InputPerMTok: 1, OutputPerMTok: 2}, price, "the global prices cover unknown models")
	re, err := cfg.CompletionTokensModels()
	require.NoError(t, err)
	require.True(t, re.MatchString("qwq-32b"))
	require.Equal(t, 64000, cfg.LLMMaxTokens)

	for env, want := range map[string]error{
		"AGENTD_LLM_PRICES":                   llm.ErrInvalidPrices,
		"AGENTD_LLM_COMPLETION_TOKENS_MODELS": config.ErrInvalidPattern,
		"AGENTD_LLM_MAX_OUTPUT_TOKENS":        config.ErrNegative,
		"AGENTD_PRICE_INPUT_PER_MTOK":         config.ErrNegative,
	} {
		bad := map[string]string{
			"AGENTD_LLM_PRICES": "gpt-4o=cheap", "AGENTD_LLM_COMPLETION_TOKENS_MODELS": "(",
			"AGENTD_LLM_MAX_OUTPUT_TOKENS": "-1", "AGENTD_PRICE_INPUT_PER_MTOK": "-0.5",
		}[env]
		_, err := pkgconfig.LoadFrom[config.Config](map[string]string{env: bad})
		require.ErrorIs(t, err, want, env)
	}
}
