package procgroup

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "child.sh")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "condition not met in time")
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStopReachesTheWholeGroup(t *testing.T) {
	var out buffer
	g, err := Start(script(t, "trap 'echo TERM; exit 0' TERM\nsleep 300 &\necho \"up $!\"\nwhile :; do sleep 0.05; done\n"),
		Options{Env: []string{"PATH=" + os.Getenv("PATH")}, Output: &out})
	require.NoError(t, err)
	waitFor(t, func() bool { return strings.Contains(out.String(), "up ") })
	require.NoError(t, g.Stop(5*time.Second))
	require.Contains(t, out.String(), "TERM")
	require.True(t, g.Exited())
	// The background sleep was in the group, so it got the signal too.
	waitFor(t, func() bool { return syscall.Kill(-g.Pid(), 0) == syscall.ESRCH })
}

func TestStopKillsWhatIgnoresTerm(t *testing.T) {
	var out buffer
	g, err := Start(script(t, "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n"),
		Options{Env: []string{"PATH=" + os.Getenv("PATH")}, Output: &out})
	require.NoError(t, err)
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	require.ErrorIs(t, g.Stop(200*time.Millisecond), ErrKilled)
	require.ErrorIs(t, g.Stop(time.Second), ErrKilled, "a second Stop returns the first result")
	waitFor(t, func() bool { return syscall.Kill(-g.Pid(), 0) == syscall.ESRCH })
}

func TestEnvironmentIsOnlyWhatIsGiven(t *testing.T) {
	t.Setenv("PROCGROUP_TEST_SECRET", "leak")
	var out buffer
	g, err := Start("/usr/bin/env", Options{Env: []string{"ONLY=this"}, Output: &out})
	require.NoError(t, err)
	require.NoError(t, g.Err())
	require.Equal(t, "ONLY=this\n", out.String())
}
