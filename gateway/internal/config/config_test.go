package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/gateway/internal/config"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
)

func TestLoad(t *testing.T) {
	cfg, err := pkgconfig.LoadFrom[config.Config](nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8000", cfg.Listen)
	require.Equal(t, []string{"http://localhost:3000"}, cfg.CORSOrigins)
	require.Equal(t, ".preview.localhost", cfg.PreviewHostSuffix())
	for public, suffix := range map[string]string{
		"https://mgx.example.com": ".preview.mgx.example.com", "http://127.0.0.1:8000": ".preview.localhost",
		"http://203.0.113.7:8000": "",
	} {
		c, err := pkgconfig.LoadFrom[config.Config](map[string]string{"MGX_PUBLIC_URL": public})
		require.NoError(t, err)
		require.Equal(t, suffix, c.PreviewHostSuffix(), public)
	}

	tests := []struct {
		name string
		env  map[string]string
		want error
	}{
		{"short jwt secret", map[string]string{"GATEWAY_JWT_SECRET": "short"}, config.ErrShortJWTSecret},
		{"bad preview url", map[string]string{"SANDBOXD_PREVIEW_URL": "127.0.0.1:8202"}, config.ErrBadURL},
		{"bad public url", map[string]string{"MGX_PUBLIC_URL": "ftp://x"}, config.ErrBadURL},
		{"zero ttl", map[string]string{"GATEWAY_ACCESS_TOKEN_TTL": "0s"}, config.ErrNotPositive},
		{"zero body limit", map[string]string{"GATEWAY_MAX_BODY_BYTES": "0"}, config.ErrNotPositive},
		{"bad proxy cidr", map[string]string{"GATEWAY_TRUSTED_PROXIES": "10.0.0.1"}, config.ErrBadCIDR},
		{"demo without password", map[string]string{"MGX_DEMO_EMAIL": "demo@mgx.dev"}, config.ErrDemoPassword},
		{"bad log level", map[string]string{"MGX_LOG_LEVEL": "loud"}, pkgconfig.ErrInvalidLogLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pkgconfig.LoadFrom[config.Config](tt.env)
			require.ErrorIs(t, err, tt.want)
		})
	}
}
