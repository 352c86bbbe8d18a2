package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/sandboxd/internal/config"
)

func TestLoad(t *testing.T) {
	agent := filepath.Join(t.TempDir(), "sandbox-agent")
	require.NoError(t, os.WriteFile(agent, []byte("x"), 0o755))
	base := func() map[string]string { return map[string]string{"SANDBOX_AGENT_BINARY": agent} }

	cfg, err := pkgconfig.LoadFrom[config.Config](base())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8201", cfg.Listen)
	require.Equal(t, "127.0.0.1:8202", cfg.PreviewListen)
	require.Equal(t, "mgx-sandbox:latest", cfg.Image)
	require.Equal(t, 1200*time.Second, cfg.IdleTimeout.D())
	require.Equal(t, 300*time.Second, cfg.GCInterval.D())
	require.Equal(t, 300*time.Second, cfg.ExecTimeout.D())
	mem, err := cfg.MemoryBytes()
	require.NoError(t, err)
	require.EqualValues(t, 1<<30, mem)
	require.InDelta(t, 1.0, cfg.CPU, 0)
	require.NotEmpty(t, cfg.Namespace)
	require.Equal(t, 500, cfg.CheckpointKeep)

	other := base()
	other["SANDBOXD_REDIS_URL"] = "redis://127.0.0.1:6380/0"
	cfg2, err := pkgconfig.LoadFrom[config.Config](other)
	require.NoError(t, err)
	require.NotEqual(t, cfg.Namespace, cfg2.Namespace, "deployments on different Redis get different namespaces")

	for _, tc := range []struct {
		name string
		env  map[string]string
		err  error
	}{
		{"seconds or durations", map[string]string{"SANDBOX_IDLE_TIMEOUT": "20m", "SANDBOX_GC_INTERVAL": "1.5"}, nil},
		{"bad driver", map[string]string{"SANDBOXD_DRIVER": "podman"}, config.ErrDriver},
		{"bad memory", map[string]string{"SANDBOX_MEMORY": "lots"}, config.ErrMemory},
		{"zero cpu", map[string]string{"SANDBOX_CPU": "0"}, config.ErrPositive},
		{"checkpoint history of 3", map[string]string{"SANDBOX_CHECKPOINT_KEEP": "3"}, nil},
		{"no checkpoint history", map[string]string{"SANDBOX_CHECKPOINT_KEEP": "0"}, config.ErrPositive},
		{"negative pool", map[string]string{"SANDBOX_POOL_SIZE": "-1"}, config.ErrNegative},
		{"missing agent", map[string]string{"SANDBOX_AGENT_BINARY": "/nonexistent/agent"}, config.ErrAgent},
		// The Kubernetes driver's agent comes from its image: no local binary is needed.
		{"kubernetes", map[string]string{"SANDBOXD_DRIVER": "kubernetes", "SANDBOX_AGENT_BINARY": "/nonexistent/agent", "SANDBOX_K8S_META_SIZE": "500Mi"}, nil},
		{"kubernetes bad namespace", map[string]string{"SANDBOXD_DRIVER": "kubernetes", "SANDBOX_K8S_NAMESPACE": "Not_A_Name"}, config.ErrK8s},
		{"kubernetes bad workspace size", map[string]string{"SANDBOXD_DRIVER": "kubernetes", "SANDBOX_K8S_WORKSPACE_SIZE": "lots"}, config.ErrK8s},
		{"kubernetes zero meta size", map[string]string{"SANDBOXD_DRIVER": "kubernetes", "SANDBOX_K8S_META_SIZE": "0"}, config.ErrK8s},
		{"kubernetes bad pull policy", map[string]string{"SANDBOXD_DRIVER": "kubernetes", "SANDBOX_K8S_PULL_POLICY": "Sometimes"}, config.ErrK8s},
		{"kubernetes bad agent route", map[string]string{"SANDBOXD_DRIVER": "kubernetes", "SANDBOX_K8S_AGENT_ROUTE": "carrier-pigeon"}, config.ErrK8s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := base()
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := pkgconfig.LoadFrom[config.Config](env)
			if tc.err == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.err)
		})
	}
}
