package redact

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain string", "not a url", "not a url"},
		{"no credentials", "redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"user only", "redis://alice@localhost:6379", "redis://alice@localhost:6379"},
		{"password only", "redis://:hunter2@localhost:6379/1", "redis://:xxxxx@localhost:6379/1"},
		{"user and password", "rediss://alice:hunter2@h:6380", "rediss://alice:xxxxx@h:6380"},
		{"password containing at", "redis://:p@ss@h:1/0", "redis://:xxxxx@h:1/0"},
		{"multi host ipv6", "redis+cluster://:pw@[::1]:7000,[::1]:7001", "redis+cluster://:xxxxx@[::1]:7000,[::1]:7001"},
		{
			"secret query params",
			"redis+sentinel://:pw@h1,h2/0?master=m&sentinel_password=s3&dial_timeout=3s#frag",
			"redis+sentinel://:xxxxx@h1,h2/0?master=m&sentinel_password=xxxxx&dial_timeout=3s#frag",
		},
		{"token param", "http://h/x?access_token=abc", "http://h/x?access_token=xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, URL(tt.in))
		})
	}
}

func TestSecretName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"MGX_INTERNAL_TOKEN", true},
		{"GATEWAY_JWT_SECRET", true},
		{"MGX_DEMO_PASSWORD", true},
		{"OPENAI_API_KEY", true},
		{"password", true},
		{"sentinel_password", true},
		{"apikey", true},
		{"GATEWAY_ACCESS_TOKEN_TTL", false},
		{"AGENTD_MAX_TOKENS", false},
		{"AGENTD_LLM_MAX_OUTPUT_TOKENS", false},
		{"SANDBOXD_PREVIEW_TOKEN_TTL", false},
		{"GATEWAY_REDIS_URL", false},
		{"KEY", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, SecretName(tt.name))
		})
	}
}
