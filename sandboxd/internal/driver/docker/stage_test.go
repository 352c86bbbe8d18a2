package docker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStageAgent(t *testing.T) {
	src := filepath.Join(t.TempDir(), "sandbox-agent")
	run := t.TempDir()
	require.NoError(t, os.WriteFile(src, []byte("agent v1"), 0o755))

	first, err := stageAgent(src, run)
	require.NoError(t, err)
	require.Equal(t, run, filepath.Dir(first), "staged inside the run directory the engine's host shares")
	got, err := os.ReadFile(first)
	require.NoError(t, err)
	require.Equal(t, "agent v1", string(got))
	info, err := os.Stat(first)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), info.Mode().Perm())

	again, err := stageAgent(src, run)
	require.NoError(t, err)
	require.Equal(t, first, again, "the same binary is staged once")

	require.NoError(t, os.WriteFile(src, []byte("agent v2"), 0o755))
	second, err := stageAgent(src, run)
	require.NoError(t, err)
	require.NotEqual(t, first, second, "a new binary gets a new name")
	_, err = os.Stat(first)
	require.NoError(t, err, "the copy running sandboxes mount stays in place")

	entries, err := os.ReadDir(run)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary files are left")

	_, err = stageAgent(filepath.Join(t.TempDir(), "missing"), run)
	require.Error(t, err)
}
