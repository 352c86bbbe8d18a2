package config

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serviceConfig is shaped like a real service's config.
type serviceConfig struct {
	Common
	ListenAddr  string        `env:"MGX_TEST_LISTEN" envDefault:"127.0.0.1:9000"`
	RedisURL    string        `env:"MGX_TEST_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	IdleTimeout time.Duration `env:"MGX_TEST_IDLE_TIMEOUT" envDefault:"20m"`
	Replicas    int           `env:"MGX_TEST_REPLICAS" envDefault:"1"`
	APIKey      string        `env:"MGX_TEST_PROVIDER_KEY" secret:"true"`
	LLM         struct {
		BaseURL *url.URL `env:"BASE_URL"`
		Model   string   `env:"MODEL" envDefault:"gpt"`
	} `envPrefix:"MGX_TEST_LLM_"`
	internal string // unexported: LogValue must leave it out
}

func TestLoadFrom(t *testing.T) {
	tests := []struct {
		name    string
		environ map[string]string
		wantErr error
		check   func(t *testing.T, c serviceConfig)
	}{
		{
			name:    "defaults",
			environ: nil,
			check: func(t *testing.T, c serviceConfig) {
				require.Equal(t, "info", c.LogLevel)
				require.Equal(t, "text", c.LogFormat)
				require.Equal(t, DevInternalToken, c.InternalToken)
				require.True(t, c.UsesDevInternalToken())
				require.Equal(t, 20*time.Minute, c.IdleTimeout)
				require.Equal(t, "gpt", c.LLM.Model)
			},
		},
		{
			name: "overrides",
			environ: map[string]string{
				"MGX_LOG_LEVEL":          "DEBUG",
				"MGX_LOG_FORMAT":         "json",
				"MGX_INTERNAL_TOKEN":     "prod-token",
				"MGX_TEST_REPLICAS":      "3",
				"MGX_TEST_LLM_BASE_URL":  "http://127.0.0.1:11434/v1",
				"MGX_TEST_IDLE_TIMEOUT":  "90s",
				"MGX_TEST_PROVIDER_KEY":  "sk-123",
				"MGX_TEST_REDIS_URL":     "redis://:pw@h:6379/2",
				"UNRELATED_ENV_VARIABLE": "x",
			},
			check: func(t *testing.T, c serviceConfig) {
				require.Equal(t, "DEBUG", c.LogLevel)
				require.False(t, c.UsesDevInternalToken())
				require.Equal(t, 3, c.Replicas)
				require.Equal(t, 90*time.Second, c.IdleTimeout)
				require.Equal(t, "127.0.0.1:11434", c.LLM.BaseURL.Host)
			},
		},
		{name: "bad level", environ: map[string]string{"MGX_LOG_LEVEL": "loud"}, wantErr: ErrInvalidLogLevel},
		{name: "bad format", environ: map[string]string{"MGX_LOG_FORMAT": "xml"}, wantErr: ErrInvalidLogFormat},
		{
			// caarlos0/env treats an empty variable as unset, so the default
			// applies; services warn when it is the dev token.
			name:    "empty token falls back to the dev default",
			environ: map[string]string{"MGX_INTERNAL_TOKEN": ""},
			check: func(t *testing.T, c serviceConfig) {
				require.True(t, c.UsesDevInternalToken())
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadFrom[serviceConfig](tt.environ)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestLoadFromParseError(t *testing.T) {
	_, err := LoadFrom[serviceConfig](map[string]string{"MGX_TEST_REPLICAS": "many"})
	require.ErrorContains(t, err, "Replicas")
}

func TestCommonValidate(t *testing.T) {
	valid := Common{LogLevel: "info", LogFormat: "text", InternalToken: "t"}
	tests := []struct {
		name    string
		mutate  func(c *Common)
		wantErr error
	}{
		{"valid", func(*Common) {}, nil},
		{"level is case-insensitive", func(c *Common) { c.LogLevel = "WARN" }, nil},
		{"json format", func(c *Common) { c.LogFormat = "JSON" }, nil},
		{"bad level", func(c *Common) { c.LogLevel = "verbose" }, ErrInvalidLogLevel},
		{"bad format", func(c *Common) { c.LogFormat = "logfmt" }, ErrInvalidLogFormat},
		{"empty token", func(c *Common) { c.InternalToken = "" }, ErrEmptyInternalToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}

// ownValidate shows the contract for services with their own checks.
type ownValidate struct {
	Common
	Port int `env:"MGX_TEST_PORT" envDefault:"0"`
}

func (c *ownValidate) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if c.Port == 0 {
		return ErrInvalidLogFormat // any named sentinel; reused to keep the test small
	}
	return nil
}

func TestLoadCallsPointerValidate(t *testing.T) {
	_, err := LoadFrom[ownValidate](map[string]string{})
	require.ErrorIs(t, err, ErrInvalidLogFormat)

	c, err := LoadFrom[ownValidate](map[string]string{"MGX_TEST_PORT": "8080"})
	require.NoError(t, err)
	require.Equal(t, 8080, c.Port)
}

func TestLoadReadsProcessEnv(t *testing.T) {
	t.Setenv("MGX_TEST_LISTEN", "0.0.0.0:1")
	c, err := Load[serviceConfig]()
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:1", c.ListenAddr)
}

func TestLogValueRedactsSecrets(t *testing.T) {
	c, err := LoadFrom[serviceConfig](map[string]string{
		"MGX_INTERNAL_TOKEN":    "prod-token",
		"MGX_TEST_PROVIDER_KEY": "sk-123",
		"MGX_TEST_REDIS_URL":    "redis://:hunter2@h:6379/2",
		"MGX_TEST_LLM_BASE_URL": "http://u:pw@127.0.0.1:11434/v1",
	})
	require.NoError(t, err)
	c.internal = "unexported-value"

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", LogValue(&c))
	out := buf.String()
	for _, secret := range []string{"prod-token", "sk-123", "hunter2", ":pw@", "unexported-value"} {
		require.NotContains(t, out, secret)
	}

	var line struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	tests := []struct {
		key  string
		want any
	}{
		{"MGX_LOG_LEVEL", "info"},
		{"MGX_INTERNAL_TOKEN", Redacted},
		{"MGX_TEST_PROVIDER_KEY", Redacted},
		{"MGX_TEST_REDIS_URL", "redis://:xxxxx@h:6379/2"},
		{"MGX_TEST_IDLE_TIMEOUT", "20m0s"},
		{"MGX_TEST_REPLICAS", float64(1)},
		{"MGX_TEST_LLM_BASE_URL", "http://u:xxxxx@127.0.0.1:11434/v1"},
		{"MGX_TEST_LLM_MODEL", "gpt"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			require.Equal(t, tt.want, line.Config[tt.key])
		})
	}
}

func TestLogValueEmptySecretStaysDistinguishable(t *testing.T) {
	c, err := LoadFrom[serviceConfig](nil)
	require.NoError(t, err)
	v := LogValue(c)
	for _, a := range v.Group() {
		if a.Key == "MGX_TEST_PROVIDER_KEY" {
			require.Equal(t, "", a.Value.String())
			return
		}
	}
	t.Fatal("MGX_TEST_PROVIDER_KEY missing from LogValue")
}
