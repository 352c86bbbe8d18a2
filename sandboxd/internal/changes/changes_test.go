package changes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func heavy(name string) bool {
	switch name {
	case "node_modules", ".git", "dist":
		return true
	}
	return false
}

func start(t *testing.T, scan bool) (*Tracker, string) {
	t.Helper()
	root := t.TempDir()
	tr, err := Start(Options{Root: root, Skip: heavy, ForceScan: scan})
	require.NoError(t, err)
	t.Cleanup(tr.Close)
	if scan {
		require.Equal(t, ModeScan, tr.Mode())
	} else {
		require.Equal(t, ModeInotify, tr.Mode())
	}
	return tr, root
}

func sh(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}

// summary renders changes as "kind path" lines, sorted.
func summary(cs []Change) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		p := c.Path
		if c.Dir {
			p += "/"
		}
		out = append(out, c.Kind+" "+p)
	}
	sort.Strings(out)
	return out
}

func TestTrackerReportsWhatCommandsChange(t *testing.T) {
	for _, mode := range []string{ModeInotify, ModeScan} {
		t.Run(mode, func(t *testing.T) {
			tr, root := start(t, mode == ModeScan)
			sh(t, root, "mkdir -p src && printf 'a\\nb\\n' > src/app.js && echo x > keep.txt && echo y > gone.txt")
			base := tr.Since(Cursor{}, 0)
			require.Empty(t, base.Changes, "a zero cursor asks for the position only")
			require.False(t, base.Reset)

			for _, tc := range []struct {
				name, script string
				want         []string
			}{
				{"sed -i rewrites in place", "sed -i 's/a/A/' src/app.js", []string{"modified src/app.js"}},
				{"a directory of files", "mkdir -p gen/deep && for i in 1 2 3; do echo $i > gen/deep/f$i.txt; done",
					[]string{"created gen/", "created gen/deep/", "created gen/deep/f1.txt", "created gen/deep/f2.txt", "created gen/deep/f3.txt"}},
				{"delete", "rm gone.txt", []string{"deleted gone.txt"}},
				{"dependencies are one entry", "mkdir -p node_modules/pkg/lib && echo 1 > node_modules/pkg/lib/i.js && echo 2 > node_modules/pkg/index.js",
					[]string{"created node_modules/"}},
				{"a moved directory", "mv gen moved", []string{
					"created moved/", "created moved/deep/", "created moved/deep/f1.txt", "created moved/deep/f2.txt", "created moved/deep/f3.txt",
					"deleted gen/"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					sh(t, root, tc.script)
					got := tr.Since(base.Cursor, 0)
					require.False(t, got.Reset)
					require.Equal(t, tc.want, summary(got.Changes))
					base = got
				})
			}

			// Writes inside a skipped directory, and a file written inside a moved directory, after the move.
			sh(t, root, "echo 3 > node_modules/pkg/more.js && echo again > moved/deep/f1.txt")
			got := tr.Since(base.Cursor, 0)
			require.Equal(t, []string{"modified moved/deep/f1.txt"}, summary(got.Changes))
		})
	}
}

func TestTrackerCoalescesAndPages(t *testing.T) {
	tr, root := start(t, false)
	c0 := tr.Since(Cursor{}, 0).Cursor
	sh(t, root, "for i in $(seq 1 50); do echo $i >> log.txt; done; for i in $(seq 1 30); do echo $i > f$i; done")
	all := tr.Since(c0, 0)
	require.Len(t, all.Changes, 31, "fifty appends to one file are one entry")
	require.Equal(t, Created, all.Changes[0].Kind)

	page := tr.Since(c0, 10)
	require.True(t, page.Truncated)
	require.Len(t, page.Changes, 10)
	var paged []Change
	paged = append(paged, page.Changes...)
	for page.Truncated {
		page = tr.Since(page.Cursor, 10)
		paged = append(paged, page.Changes...)
	}
	require.Equal(t, summary(all.Changes), summary(paged))
}

func TestTrackerCursorOfAnotherEpochResets(t *testing.T) {
	tr, root := start(t, false)
	sh(t, root, "echo 1 > a")
	res := tr.Since(Cursor{Epoch: "other", Seq: 1}, 0)
	require.True(t, res.Reset)
	require.Empty(t, res.Changes)
	_, ok := ParseCursor(res.Cursor.String())
	require.True(t, ok)
	c, ok := ParseCursor(res.Cursor.String())
	require.True(t, ok)
	require.Equal(t, res.Cursor, c)
	_, ok = ParseCursor("nonsense")
	require.False(t, ok)
}

func TestTrackerEvictionResetsOldCursors(t *testing.T) {
	root := t.TempDir()
	tr, err := Start(Options{Root: root, MaxEntries: 10})
	require.NoError(t, err)
	defer tr.Close()
	c0 := tr.Since(Cursor{}, 0).Cursor
	sh(t, root, "for i in $(seq 1 25); do echo $i > f$i; done")
	res := tr.Since(c0, 0)
	require.True(t, res.Reset, "older changes were dropped")
	require.NotEmpty(t, res.Changes)
	require.LessOrEqual(t, len(res.Changes), 10)
}

func TestTrackerWaitWakesOnChange(t *testing.T) {
	for _, mode := range []string{ModeInotify, ModeScan} {
		t.Run(mode, func(t *testing.T) {
			tr, root := start(t, mode == ModeScan)
			c0 := tr.Since(Cursor{}, 0).Cursor
			outside := filepath.Join(t.TempDir(), "late.txt")
			require.NoError(t, os.WriteFile(outside, []byte("x"), 0o644))
			go func() {
				time.Sleep(100 * time.Millisecond)
				// Moved in whole, so no wait can see it half written.
				_ = os.Rename(outside, filepath.Join(root, "late.txt"))
			}()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			res := tr.Wait(ctx, c0, 0)
			require.Equal(t, []string{"created late.txt"}, summary(res.Changes))

			ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			res = tr.Wait(ctx, res.Cursor, 0)
			require.Empty(t, res.Changes, "nothing changed: the wait ends with its context")
		})
	}
}

// BenchmarkQuery measures one "what changed since" query on a project-sized tree (2,000 files in 100
// directories, plus an untouched node_modules of 20,000 files) after one file changed: what every
// tool call of agentd pays. The inotify journal answers from memory; the scan fallback walks the tree.
func BenchmarkQuery(b *testing.B) {
	for _, mode := range []string{ModeInotify, ModeScan} {
		b.Run(mode, func(b *testing.B) {
			root := b.TempDir()
			makeTree(b, root, "src", 100, 20)
			makeTree(b, root, "node_modules", 1000, 20)
			tr, err := Start(Options{Root: root, Skip: heavy, ForceScan: mode == ModeScan})
			require.NoError(b, err)
			defer tr.Close()
			c := tr.Since(Cursor{}, 0).Cursor
			f := filepath.Join(root, "src", "d0", "f0.txt")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				require.NoError(b, os.WriteFile(f, []byte(fmt.Sprint(i)), 0o644))
				res := tr.Since(c, 0)
				if len(res.Changes) != 1 {
					b.Fatalf("got %v", res.Changes)
				}
				c = res.Cursor
			}
		})
	}
}

// BenchmarkWrite measures what the watcher adds to a command's file writes: creating and writing
// 100 files with and without a tracker on the tree.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{"none", ModeInotify} {
		b.Run(mode, func(b *testing.B) {
			root := b.TempDir()
			if mode != "none" {
				tr, err := Start(Options{Root: root, Skip: heavy})
				require.NoError(b, err)
				defer tr.Close()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dir := filepath.Join(root, fmt.Sprint("d", i))
				require.NoError(b, os.Mkdir(dir, 0o755))
				for j := 0; j < 100; j++ {
					require.NoError(b, os.WriteFile(filepath.Join(dir, fmt.Sprint(j)), []byte(strings.Repeat("x", 512)), 0o644))
				}
			}
		})
	}
}

func makeTree(b *testing.B, root, top string, dirs, files int) {
	for d := 0; d < dirs; d++ {
		dir := filepath.Join(root, top, fmt.Sprint("d", d))
		require.NoError(b, os.MkdirAll(dir, 0o755))
		for f := 0; f < files; f++ {
			require.NoError(b, os.WriteFile(filepath.Join(dir, fmt.Sprint("f", f, ".txt")), []byte("x"), 0o644))
		}
	}
}
