package durable

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFileReplacesAndLeavesNoTemporaries(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteFile(dir, "marker.json", []byte(`{"v":1}`)))
	require.NoError(t, WriteFile(dir, "marker.json", []byte(`{"v":2}`)))
	b, err := os.ReadFile(filepath.Join(dir, "marker.json"))
	require.NoError(t, err)
	require.Equal(t, `{"v":2}`, string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the temporary file is renamed or removed, never left")

	// A directory that cannot take the file: an error, and the old content is intact.
	require.Error(t, WriteFile(filepath.Join(dir, "missing"), "marker.json", []byte("x")))
	require.NoError(t, SyncFS(dir))
	require.Error(t, SyncFS(filepath.Join(dir, "missing")))
}
