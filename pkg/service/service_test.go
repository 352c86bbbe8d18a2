package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/service"
)

type testConfig struct {
	pkgconfig.Common
	pkgconfig.Service `envPrefix:"TEST_"`
	Fail              string `env:"TEST_FAIL"`
}

func (c *testConfig) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	return c.Service.Validate("TEST_")
}

type testApp struct {
	cfg testConfig
	ran chan struct{}
}

func (a *testApp) Run(ctx context.Context) error {
	close(a.ran)
	<-ctx.Done()
	if a.cfg.Fail == "run" {
		return errors.New("stop failed")
	}
	return nil
}

func newTestApp(_ context.Context, cfg testConfig, log *slog.Logger) (*testApp, error) {
	log.Info("building")
	if cfg.Fail == "new" {
		return nil, errors.New("cannot build")
	}
	return &testApp{cfg: cfg, ran: make(chan struct{})}, nil
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want int
		log  string
	}{
		{"clean stop", map[string]string{}, service.ExitOK, "stopped"},
		{"bad configuration", map[string]string{"TEST_SHUTDOWN_TIMEOUT": "0s"}, service.ExitConfig, "TEST_SHUTDOWN_TIMEOUT"},
		{"negative drain", map[string]string{"TEST_DRAIN_DELAY": "-1s"}, service.ExitConfig, "TEST_DRAIN_DELAY"},
		{"build fails", map[string]string{"TEST_FAIL": "new"}, service.ExitFailure, "cannot build"},
		{"stop fails", map[string]string{"TEST_FAIL": "run"}, service.ExitFailure, "stop failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			code := service.Run(ctx, "test", newTestApp, service.Options{Environ: tt.env, LogOutput: &out})
			require.Equal(t, tt.want, code, out.String())
			require.Contains(t, out.String(), tt.log)
		})
	}
}

// The development token is named loudly at start; the configuration is logged with secrets hidden.
func TestStartLogs(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	r, err := service.Start(ctx, "test", newTestApp, service.Options{
		Environ: map[string]string{"TEST_DRAIN_DELAY": "2s"}, LogOutput: &out,
	})
	require.NoError(t, err)
	<-r.App.ran
	cancel()
	require.NoError(t, r.Wait())
	require.Contains(t, out.String(), "MGX_INTERNAL_TOKEN is the public development token")
	require.Contains(t, out.String(), "config.TEST_DRAIN_DELAY=2s")
	require.Contains(t, out.String(), "version="+service.Version)
	require.NotContains(t, out.String(), pkgconfig.DevInternalToken)
}
