package checkpoint_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/sandboxd/internal/checkpoint"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

func open(t testing.TB) (string, *checkpoint.Store) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "workspace")
	require.NoError(t, os.Mkdir(root, 0o755))
	s, err := checkpoint.Open(root, filepath.Join(base, "meta", "history"), checkpoint.Options{Exclude: workspace.Heavy})
	require.NoError(t, err)
	return root, s
}

func write(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

// files returns every file under root (node_modules included) with its content.
func files(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			require.NoError(t, err)
			out[rel] = "-> " + target
		case d.IsDir():
			if rel != "." {
				out[rel+"/"] = ""
			}
		default:
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			out[rel] = string(b)
		}
		return nil
	}))
	return out
}

func TestCheckpoints(t *testing.T) {
	root, s := open(t)
	write(t, root, "src/app.js", "line 1\nline 2\n")
	write(t, root, "README.md", "hello\n")
	write(t, root, "node_modules/dep/index.js", "dependency\n")
	require.NoError(t, os.Mkdir(filepath.Join(root, "empty"), 0o755))
	require.NoError(t, os.Symlink("src/app.js", filepath.Join(root, "link")))
	first, created, err := s.Create(checkpoint.Meta{Kind: checkpoint.KindStep, Agent: "Alex", RunID: "r1", Step: "call_1"})
	require.NoError(t, err)
	require.True(t, created)
	require.True(t, checkpoint.ValidID(first.ID))
	require.Equal(t, 3, first.FilesChanged, "two files and a link; node_modules is not history")
	state1 := files(t, root)

	// Nothing changed: the latest is returned.
	again, created, err := s.Create(checkpoint.Meta{})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, again.ID)

	write(t, root, "src/app.js", "line 1\nline two\n")
	write(t, root, "src/new.js", "new\n")
	require.NoError(t, os.Remove(filepath.Join(root, "README.md")))
	write(t, root, "node_modules/dep/index.js", "dependency v2\n")
	write(t, root, "bin.dat", "\x00\x01\x02")

	t.Run("diff against now", func(t *testing.T) {
		d, err := s.Diff(first.ID, "", ".")
		require.NoError(t, err)
		got := map[string]checkpoint.FileDiff{}
		for _, f := range d.Files {
			got[f.Path] = f
		}
		require.Len(t, got, 4, "%+v", d.Files)
		require.Equal(t, "modified", got["src/app.js"].Status)
		require.Contains(t, got["src/app.js"].Diff, "--- a/src/app.js\n+++ b/src/app.js\n")
		require.Contains(t, got["src/app.js"].Diff, "-line 2\n+line two\n")
		require.Equal(t, "added", got["src/new.js"].Status)
		require.Equal(t, "deleted", got["README.md"].Status)
		require.Contains(t, got["README.md"].Diff, "-hello\n")
		require.True(t, got["bin.dat"].Binary)
		require.Empty(t, got["bin.dat"].Diff)

		d, err = s.Diff(first.ID, "", "src/app.js")
		require.NoError(t, err)
		require.Len(t, d.Files, 1)
	})

	second, created, err := s.Create(checkpoint.Meta{Message: "second"})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, first.ID, second.Parent)
	require.Equal(t, 4, second.FilesChanged)
	state2 := files(t, root)

	t.Run("diff between checkpoints", func(t *testing.T) {
		d, err := s.Diff(first.ID, second.ID, ".")
		require.NoError(t, err)
		var paths []string
		for _, f := range d.Files {
			paths = append(paths, f.Path)
		}
		require.Equal(t, []string{"README.md", "bin.dat", "src/app.js", "src/new.js"}, paths)
	})

	t.Run("list", func(t *testing.T) {
		l, more, err := s.List(50, "")
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{second.ID, first.ID}, []string{l[0].ID, l[1].ID})
		require.Equal(t, "Alex", l[1].Agent)
		l, more, err = s.List(1, "")
		require.NoError(t, err)
		require.True(t, more)
		require.Len(t, l, 1)
		l, more, err = s.List(1, second.ID)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, first.ID, l[0].ID)
	})

	t.Run("restore one file", func(t *testing.T) {
		write(t, root, "src/app.js", "broken\n")
		before, changed, err := s.Restore(first.ID, "src/app.js")
		require.NoError(t, err)
		require.Equal(t, 1, changed)
		require.Equal(t, checkpoint.KindBeforeRestore, before.Kind)
		b, err := os.ReadFile(filepath.Join(root, "src/app.js"))
		require.NoError(t, err)
		require.Equal(t, "line 1\nline 2\n", string(b))
		// Nothing else moved.
		_, err = os.Stat(filepath.Join(root, "src/new.js"))
		require.NoError(t, err)
		// ... and the broken state is itself restorable.
		_, _, err = s.Restore(before.ID, "src/app.js")
		require.NoError(t, err)
		b, err = os.ReadFile(filepath.Join(root, "src/app.js"))
		require.NoError(t, err)
		require.Equal(t, "broken\n", string(b))
		_, _, err = s.Restore(second.ID, "src/app.js")
		require.NoError(t, err)
		_, _, err = s.Restore(first.ID, "no/such/path")
		require.ErrorIs(t, err, checkpoint.ErrNoPath)
	})

	t.Run("restore the whole workspace and undo it", func(t *testing.T) {
		require.Equal(t, state2, files(t, root))
		before, changed, err := s.Restore(first.ID, ".")
		require.NoError(t, err)
		require.Positive(t, changed)
		now := files(t, root)
		// node_modules is not history: it stays as it is now.
		want := state1
		want["node_modules/dep/index.js"] = "dependency v2\n"
		require.Equal(t, want, now)

		_, _, err = s.Restore(before.ID, ".")
		require.NoError(t, err)
		require.Equal(t, state2, files(t, root))
	})

	t.Run("bad ids", func(t *testing.T) {
		_, err := s.Diff("../../etc/passwd", "", ".")
		require.ErrorIs(t, err, checkpoint.ErrInvalid)
		_, err = s.Diff("0123456789abcdef", "", ".")
		require.ErrorIs(t, err, checkpoint.ErrNotFound)
		_, _, err = s.Restore("0123456789abcdef", ".")
		require.ErrorIs(t, err, checkpoint.ErrNotFound)
	})

	t.Run("a new store on the same history", func(t *testing.T) {
		latest, _, err := s.Create(checkpoint.Meta{})
		require.NoError(t, err)
		s2, err := checkpoint.Open(root, filepath.Join(filepath.Dir(root), "meta", "history"), checkpoint.Options{Exclude: workspace.Heavy})
		require.NoError(t, err)
		l, _, err := s2.List(100, "")
		require.NoError(t, err)
		var kinds []string
		for _, m := range l {
			kinds = append(kinds, m.Kind)
		}
		sort.Strings(kinds)
		require.Contains(t, kinds, checkpoint.KindBeforeRestore)
		m, created, err := s2.Create(checkpoint.Meta{})
		require.NoError(t, err)
		require.False(t, created, "the workspace is as the latest checkpoint left it")
		require.Equal(t, latest.ID, m.ID)
	})
}

// project writes n small source files in nested directories, plus a node_modules the history skips.
func project(t testing.TB, root string, n int) {
	for i := 0; i < n; i++ {
		write(t, root, fmt.Sprintf("src/d%02d/f%04d.ts", i%40, i), fmt.Sprintf("export const v%d = %d;\n// %0200d\n", i, i, i))
	}
	for i := 0; i < 500; i++ {
		write(t, root, fmt.Sprintf("node_modules/p%d/index.js", i), "module.exports = 1;\n")
	}
}

// Snapshot cost of a 2,000-file project (the target: p50 under 100 ms): the first (every
// file read and stored), one after a single edit, and one of an unchanged tree.
func BenchmarkCheckpoint2000Files(b *testing.B) {
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			root, s := open(b)
			project(b, root, 2000)
			b.StartTimer()
			_, _, err := s.Create(checkpoint.Meta{})
			require.NoError(b, err)
		}
	})
	root, s := open(b)
	project(b, root, 2000)
	_, _, err := s.Create(checkpoint.Meta{})
	require.NoError(b, err)
	b.Run("one file changed", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			write(b, root, "src/d00/f0000.ts", fmt.Sprintf("export const v0 = %d;\n", i))
			_, created, err := s.Create(checkpoint.Meta{})
			require.NoError(b, err)
			require.True(b, created)
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			_, _, err := s.Create(checkpoint.Meta{})
			require.NoError(b, err)
		}
	})
}
