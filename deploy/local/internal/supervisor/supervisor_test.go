package supervisor

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is written by the children's output goroutines and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "svc.sh")
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

func TestStopAllStopsInReverseOrderAndLeavesNothing(t *testing.T) {
	var out syncBuffer
	sup := New(slog.New(slog.DiscardHandler))
	// Each service reports its own TERM and also starts a grandchild, which must die with its group.
	svc := script(t, `trap 'echo "$NAME got TERM"; exit 0' TERM
sleep 300 &
echo "$NAME up $!"
while :; do sleep 0.05; done
`)
	var kids []*Child
	for _, name := range []string{"first", "second", "third"} {
		c, err := sup.Start(name, svc, []string{"NAME=" + name}, &out)
		require.NoError(t, err)
		kids = append(kids, c)
	}
	waitFor(t, func() bool { return strings.Count(out.String(), " up ") == 3 })

	// The grace is for a loaded machine (a shell trap and exit may wait their turn for a core); the
	// test is about order and leftovers, not speed.
	require.NoError(t, sup.StopAll(30*time.Second))
	log := out.String()
	i3, i2, i1 := strings.Index(log, "third got TERM"), strings.Index(log, "second got TERM"), strings.Index(log, "first got TERM")
	require.True(t, i3 >= 0 && i2 > i3 && i1 > i2, "stop order must be reverse of start:\n%s", log)
	for _, c := range kids {
		requireGroupGone(t, c)
	}
	require.Contains(t, log, "third    | third up")
}

func TestStopAllKillsAChildThatIgnoresTerm(t *testing.T) {
	sup := New(slog.New(slog.DiscardHandler))
	var out syncBuffer
	c, err := sup.Start("stubborn", script(t, "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n"), nil, &out)
	require.NoError(t, err)
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	err = sup.StopAll(300 * time.Millisecond)
	require.ErrorContains(t, err, "was killed")
	requireGroupGone(t, c)
}

// requireGroupGone waits until no process of the child's group exists (grandchildren are reparented
// and reaped asynchronously, so a killed member can linger as a zombie for a moment).
func requireGroupGone(t *testing.T, c *Child) {
	t.Helper()
	waitFor(t, func() bool { return syscall.Kill(-c.Pid(), 0) == syscall.ESRCH })
}

func TestExitedReportsACrash(t *testing.T) {
	sup := New(slog.New(slog.DiscardHandler))
	_, err := sup.Start("crasher", script(t, "exit 3\n"), nil, &syncBuffer{})
	require.NoError(t, err)
	select {
	case c := <-sup.Exited:
		require.Equal(t, "crasher", c.Name)
		require.ErrorContains(t, c.Err(), "exit status 3")
	case <-time.After(10 * time.Second):
		t.Fatal("crash not reported")
	}
}
