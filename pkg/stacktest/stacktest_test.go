package stacktest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Ports are never handed out twice in one test binary, and are free when handed out.
func TestPortsAreFreshAndFree(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 200 {
		p := Port(t)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		require.NoError(t, err, "port %d is free", p)
		require.NoError(t, l.Close())
	}
}

// A child gets only the environment it is given (plus PATH and HOME), its output is kept, and a
// stop reaches its whole process group.
func TestStartAndStop(t *testing.T) {
	t.Setenv("STACKTEST_LEAK", "secret")
	script := filepath.Join(t.TempDir(), "child.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho \"own=$OWN leak=$STACKTEST_LEAK\"\nsleep 300 &\necho \"bg $!\"\nwait\n"), 0o755))
	p := Start(t, "child", script, map[string]string{"OWN": "yes"})
	Eventually(t, 10*time.Second, func() bool { return p.Log().Contains("bg ") }, "the child runs")
	require.Contains(t, p.Output(), "own=yes leak=\n")
	require.NoError(t, p.Stop(5*time.Second))
	Eventually(t, 10*time.Second, func() bool { return syscall.Kill(-p.Pid(), 0) == syscall.ESRCH }, "the group is gone")
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root, err := RepoRoot()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.work"))
	require.FileExists(t, filepath.Join(root, "pkg", "stacktest", "doc.go"))
}
