package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// A search reads regular files only: a FIFO never parks it, and a hard link whose other name lies
// outside the workspace is not read. Long lines are cut, and the cut is said.
func TestSearchReadsOnlyPlainFiles(t *testing.T) {
	c := startAgent(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := run(ctx, c, agentapi.ExecRequest{Command: `mkfifo pipe.txt && echo 'needle here' > plain.txt &&
f=$(mktemp) && echo 'needle secret' > "$f" && ln "$f" linked.txt &&
printf 'needle%01000d\n' 0 > long.txt`, Timeout: 10 * time.Second})
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, string(res.Stderr))

	begin := time.Now()
	got, err := c.Search(ctx, agentapi.SearchRequest{Root: ".", Pattern: "needle"})
	require.NoError(t, err)
	require.Less(t, time.Since(begin), 5*time.Second)
	var files []string
	for _, m := range got.Matches {
		files = append(files, m.Path)
		require.NotContains(t, m.Text, "secret")
		if m.Path == "long.txt" {
			require.True(t, m.Cut)
			require.Len(t, m.Text, searchMaxLine)
		}
	}
	require.ElementsMatch(t, []string{"plain.txt", "long.txt"}, files)
	require.Equal(t, 1, got.FilesSkipped, "the hard link")

	got, err = c.Search(ctx, agentapi.SearchRequest{Root: "pipe.txt", Pattern: "x"})
	require.NoError(t, err)
	require.Empty(t, got.Matches)

	_, err = c.Search(ctx, agentapi.SearchRequest{Root: "missing", Pattern: "x"})
	require.ErrorContains(t, err, "missing: no such file or directory")
	require.False(t, strings.Contains(err.Error(), "/tmp/"), "no host path: %v", err)
}
