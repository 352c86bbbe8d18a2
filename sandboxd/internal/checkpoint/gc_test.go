package checkpoint_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/sandboxd/internal/checkpoint"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// openKeep is open with a history of keep checkpoints; it returns the history's directory too.
func openKeep(t testing.TB, keep int) (root, dir string, s *checkpoint.Store) {
	t.Helper()
	base := t.TempDir()
	root, dir = filepath.Join(base, "workspace"), filepath.Join(base, "meta", "history")
	require.NoError(t, os.Mkdir(root, 0o755))
	s, err := checkpoint.Open(root, dir, checkpoint.Options{Exclude: workspace.Heavy, Keep: keep})
	require.NoError(t, err)
	return root, dir, s
}

// objectFile is where the history keeps content.
func objectFile(dir, content string) string {
	sum := sha256.Sum256([]byte(content))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(dir, "objects", h[:2], h[2:])
}

func ids(l []checkpoint.Meta) []string {
	out := make([]string, len(l))
	for i, m := range l {
		out[i] = m.ID
	}
	return out
}

func TestRetentionDropsTheOldestAndTheirObjects(t *testing.T) {
	root, dir, s := openKeep(t, 3)
	write(t, root, "shared.txt", "in every checkpoint\n")
	var cps []checkpoint.Meta
	var states []map[string]string
	for i := range 6 {
		write(t, root, "step.txt", fmt.Sprintf("step %d\n", i))
		m, created, err := s.Create(checkpoint.Meta{Kind: checkpoint.KindStep, Step: fmt.Sprint(i)})
		require.NoError(t, err)
		require.True(t, created)
		cps = append(cps, m)
		states = append(states, files(t, root))
	}

	l, more, err := s.List(50, "")
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, []string{cps[5].ID, cps[4].ID, cps[3].ID}, ids(l))
	require.Empty(t, l[2].Parent, "the oldest kept has no predecessor any more")
	require.Equal(t, cps[3].ID, l[1].Parent)

	for i, gone := range cps[:3] {
		_, _, err := s.Restore(gone.ID, ".")
		require.ErrorIs(t, err, checkpoint.ErrNotFound, "restore of dropped %d", i)
		_, err = s.Diff(gone.ID, "", ".")
		require.ErrorIs(t, err, checkpoint.ErrNotFound, "diff of dropped %d", i)
		_, err = s.Diff(cps[5].ID, gone.ID, ".")
		require.ErrorIs(t, err, checkpoint.ErrNotFound, "diff against dropped %d", i)
		_, _, err = s.List(10, gone.ID)
		require.ErrorIs(t, err, checkpoint.ErrNotFound)
		require.NoFileExists(t, filepath.Join(dir, "trees", gone.ID+".json"))
		require.NoFileExists(t, objectFile(dir, fmt.Sprintf("step %d\n", i)), "only dropped checkpoint %d named it", i)
	}
	for i := 3; i < 6; i++ {
		require.FileExists(t, objectFile(dir, fmt.Sprintf("step %d\n", i)))
	}
	require.FileExists(t, objectFile(dir, "in every checkpoint\n"))

	// A diff between kept checkpoints, and one of the oldest kept against its successor.
	d, err := s.Diff(cps[3].ID, cps[5].ID, ".")
	require.NoError(t, err)
	require.Len(t, d.Files, 1)
	require.Contains(t, d.Files[0].Diff, "-step 3\n+step 5\n")

	// The oldest kept restores byte for byte, although the "before_restore" checkpoint pushes it
	// out of the history as the restore ends.
	write(t, root, "shared.txt", "changed\n")
	before, _, err := s.Restore(cps[3].ID, ".")
	require.NoError(t, err)
	require.Equal(t, states[3], files(t, root))
	l, _, err = s.List(50, "")
	require.NoError(t, err)
	require.Equal(t, []string{before.ID, cps[5].ID, cps[4].ID}, ids(l))
	_, _, err = s.Restore(cps[3].ID, ".")
	require.ErrorIs(t, err, checkpoint.ErrNotFound)
	_, _, err = s.Restore(cps[5].ID, ".")
	require.NoError(t, err)
	require.Equal(t, states[5], files(t, root))

	// Another store on the same history sees what this one left.
	s2, err := checkpoint.Open(root, dir, checkpoint.Options{Exclude: workspace.Heavy, Keep: 3})
	require.NoError(t, err)
	l2, _, err := s2.List(50, "")
	require.NoError(t, err)
	l, _, err = s.List(50, "")
	require.NoError(t, err)
	require.Equal(t, ids(l), ids(l2))
	trees, err := os.ReadDir(filepath.Join(dir, "trees"))
	require.NoError(t, err)
	require.Len(t, trees, 3, "one tree per kept checkpoint")
}

// The log is rewritten once a tenth of KEEP has gathered past it, not for every checkpoint past KEEP;
// the prune then goes back to exactly KEEP, the newest.
func TestRetentionPrunesInBatches(t *testing.T) {
	root, dir, s := openKeep(t, 20)
	logSize := func() int64 {
		fi, err := os.Stat(filepath.Join(dir, "log.jsonl"))
		require.NoError(t, err)
		return fi.Size()
	}
	var all []checkpoint.Meta
	for i := range 23 {
		write(t, root, "step.txt", fmt.Sprintf("step %d\n", i))
		m, _, err := s.Create(checkpoint.Meta{Kind: checkpoint.KindStep})
		require.NoError(t, err)
		all = append(all, m)
		l, _, err := s.List(50, "")
		require.NoError(t, err)
		switch {
		case i < 22:
			require.Len(t, l, i+1, "up to KEEP plus a tenth, nothing is dropped")
		default:
			require.Len(t, l, 20, "past it, back to KEEP")
			require.Equal(t, all[len(all)-1].ID, l[0].ID, "the newest first")
		}
	}
	before := logSize()
	write(t, root, "step.txt", "one more\n")
	_, _, err := s.Create(checkpoint.Meta{Kind: checkpoint.KindStep})
	require.NoError(t, err)
	require.Greater(t, logSize(), before, "the next checkpoint only appends")
	_, _, err = s.Restore(all[2].ID, ".")
	require.ErrorIs(t, err, checkpoint.ErrNotFound, "a dropped one is gone")
}

func TestGCCollectsLeftoversOfInterruptedCheckpoints(t *testing.T) {
	root, dir, s := openKeep(t, 10)
	write(t, root, "a.txt", "kept\n")
	// A path that spells what a tree file says before an object is no object.
	write(t, root, `q"h":"0123.txt`, "odd name\n")
	first, _, err := s.Create(checkpoint.Meta{})
	require.NoError(t, err)
	state := files(t, root)

	// What a checkpoint killed half-way leaves: an object no tree names, temporaries, a tree that
	// never reached the log, and a log rewrite's temporary.
	orphan := objectFile(dir, "never referenced\n")
	require.NoError(t, os.MkdirAll(filepath.Dir(orphan), 0o700))
	require.NoError(t, os.WriteFile(orphan, []byte("never referenced\n"), 0o600))
	leftovers := []string{
		orphan,
		filepath.Join(dir, "tmp", "obj-123456"),
		filepath.Join(dir, "tmp", "create.pending"),
		filepath.Join(dir, "trees", "0123456789abcdef.json"),
		filepath.Join(dir, "trees", ".fedcba9876543210.json.42"),
		filepath.Join(dir, ".log.jsonl.77"),
	}
	for _, p := range leftovers[1:] {
		require.NoError(t, os.WriteFile(p, []byte("{}"), 0o600))
	}

	t.Run("a tree the log does not name is no checkpoint", func(t *testing.T) {
		s2, err := checkpoint.Open(root, dir, checkpoint.Options{Keep: 10})
		require.NoError(t, err)
		_, err = s2.Diff("0123456789abcdef", "", ".")
		require.ErrorIs(t, err, checkpoint.ErrNotFound)
	})

	st, err := s.GC()
	require.NoError(t, err)
	require.Equal(t, checkpoint.GCStats{Objects: 1, Trees: 2, Temporaries: 3}, st)
	for _, p := range leftovers {
		require.NoFileExists(t, p)
	}
	require.FileExists(t, objectFile(dir, "kept\n"))
	require.FileExists(t, objectFile(dir, "odd name\n"))
	st, err = s.GC()
	require.NoError(t, err)
	require.Zero(t, st, "nothing left to collect")

	write(t, root, "a.txt", "changed\n")
	_, _, err = s.Restore(first.ID, ".")
	require.NoError(t, err)
	require.Equal(t, state, files(t, root))

	t.Run("collected by the next checkpoint after a crash", func(t *testing.T) {
		require.NoError(t, os.WriteFile(orphan, []byte("never referenced\n"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tmp", "create.pending"), nil, 0o600))
		// A restarted agent: a new store on the history.
		s2, err := checkpoint.Open(root, dir, checkpoint.Options{Keep: 10})
		require.NoError(t, err)
		write(t, root, "b.txt", "new\n")
		_, created, err := s2.Create(checkpoint.Meta{})
		require.NoError(t, err)
		require.True(t, created)
		require.NoFileExists(t, orphan)
		require.NoFileExists(t, filepath.Join(dir, "tmp", "create.pending"))
		require.FileExists(t, objectFile(dir, "new\n"))
	})
}

func TestCheckpointsConcurrentWithPruneAndGC(t *testing.T) {
	root, dir, s := openKeep(t, 4)
	write(t, root, "shared.txt", "shared\n")
	var (
		mu     sync.Mutex
		states = map[string]map[string]string{}
		wg     sync.WaitGroup
		done   = make(chan struct{})
	)
	wg.Add(3)
	go func() { // the agent's steps
		defer wg.Done()
		defer close(done)
		for i := range 40 {
			write(t, root, fmt.Sprintf("f%d.txt", i%7), fmt.Sprintf("step %d\n", i))
			m, created, err := s.Create(checkpoint.Meta{Kind: checkpoint.KindStep})
			if !assertNoError(t, err) || !created {
				return
			}
			st := files(t, root)
			mu.Lock()
			states[m.ID] = st
			mu.Unlock()
		}
	}()
	go func() { // collections asked for meanwhile
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			_, err := s.GC()
			assertNoError(t, err)
		}
	}()
	go func() { // a user diffing what is listed
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			l, _, err := s.List(10, "")
			assertNoError(t, err)
			for _, m := range l {
				// Only a checkpoint pruned meanwhile may be missing.
				if _, err := s.Diff(m.ID, "", "."); err != nil && !errors.Is(err, checkpoint.ErrNotFound) {
					t.Error(err)
				}
			}
		}
	}()
	wg.Wait()

	// Every listed checkpoint restores as it was made (a longer history now, so the restores'
	// own checkpoints push none of them out).
	s.SetKeep(100)
	l, _, err := s.List(50, "")
	require.NoError(t, err)
	require.Len(t, l, 4)
	for _, m := range l {
		_, _, err := s.Restore(m.ID, ".")
		require.NoError(t, err)
		require.Equal(t, states[m.ID], files(t, root), m.ID)
	}
	st, err := s.GC()
	require.NoError(t, err)
	require.Zero(t, st.Objects, "the last collection left nothing, and the restores wrote nothing new")
	tmps, err := os.ReadDir(filepath.Join(dir, "tmp"))
	require.NoError(t, err)
	require.Empty(t, tmps)
}

// assertNoError reports err from a goroutine other than the test's (require must not be used there).
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// The cost of one collection of a 2,000-file project's history of 500 checkpoints (each a step that
// changed one file): what a checkpoint that triggers the amortised collection pays on top.
func BenchmarkGC2000Files500Checkpoints(b *testing.B) {
	root, _, s := openKeep(b, 500)
	project(b, root, 2000)
	for i := range 500 {
		write(b, root, fmt.Sprintf("src/d%02d/f%04d.ts", i%40, i), fmt.Sprintf("export const v%d = %d; // edit\n", i, i))
		_, created, err := s.Create(checkpoint.Meta{})
		require.NoError(b, err)
		require.True(b, created)
	}
	b.ResetTimer()
	for b.Loop() {
		_, err := s.GC()
		require.NoError(b, err)
	}
}
