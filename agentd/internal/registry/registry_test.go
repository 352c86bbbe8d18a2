package registry_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
)

func TestDefaultTeam(t *testing.T) {
	r, err := registry.Load("", tools.Known)
	require.NoError(t, err)
	var names []string
	for _, a := range r.All() {
		names = append(names, a.Name)
		require.NotEmpty(t, a.SystemPrompt, a.Name)
		require.NotEmpty(t, a.Title, a.Name)
	}
	require.Equal(t, []string{"mike", "emma", "bob", "alex", "david", "iris"}, names)
	for _, a := range r.All() {
		// Alex is the only one who writes code and runs commands.
		require.Equal(t, a.Name == "alex", a.Allows(tools.SandboxShell), a.Name)
		require.Equal(t, a.Name == "alex", a.Allows(tools.FileWrite) && a.WritePrefix == "", a.Name)
	}
	mike, _ := r.Get("Mike")
	require.True(t, mike.Allows(tools.PlanAppend))
	require.False(t, mike.Allows(tools.FileWrite))
}

func TestLoadErrors(t *testing.T) {
	tests := map[string]string{
		"unknown tool":  "agents:\n  - {name: mike, tools: [teleport]}\n",
		"no lead":       "agents:\n  - {name: alex, tools: [file_write]}\n",
		"duplicate":     "agents:\n  - {name: mike}\n  - {name: MIKE}\n",
		"unknown field": "agents:\n  - {name: mike, colour: blue}\n",
		"not yaml":      "agents: [",
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agents.yaml")
			require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
			_, err := registry.Load(p, tools.Known)
			require.ErrorIs(t, err, registry.ErrInvalid)
		})
	}
	_, err := registry.Load("/nonexistent/agents.yaml", tools.Known)
	require.Error(t, err)
}
