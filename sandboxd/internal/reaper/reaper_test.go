package reaper_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver/local"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/reaper"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

func TestMain(m *testing.M) { stacktest.Main(m, stacktest.Binaries("sandbox-agent")) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Two sandboxd replicas sweeping the same Redis at the same moment destroy
// every idle sandbox exactly once, and each reclaim is logged.
func TestConcurrentSweepsNeverDoubleDestroy(t *testing.T) {
	url := stacktest.SharedRedis(t)
	runDir := stacktest.RunDir(t)
	drv, err := local.New(local.Options{AgentBinary: stacktest.Bin(t, "sandbox-agent"), RunDir: runDir})
	require.NoError(t, err)
	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))

	var reapers []*reaper.Reaper
	var managers []*sandbox.Manager
	for i := 0; i < 2; i++ {
		rdb, err := redisclient.New(t.Context(), url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = rdb.Close() })
		st := store.New(rdb)
		fleet := instance.New(drv, instance.Options{CreateTimeout: 10 * time.Second, Logger: log})
		m, err := sandbox.New(fleet, st, nil, sandbox.Options{IdleTimeout: 200 * time.Millisecond, CreateTimeout: 10 * time.Second,
			ExecTimeout: 10 * time.Second, MaxExecTimeout: time.Minute, OutputLimit: 1 << 20, VolumeGrace: time.Hour, Logger: log})
		require.NoError(t, err)
		managers = append(managers, m)
		reapers = append(reapers, reaper.New(m, 200*time.Millisecond, time.Hour, log))
	}
	const n = 6
	for i := 0; i < n; i++ {
		_, _, err := managers[i%2].Launch(t.Context(), "alice", uuid.NewString())
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		insts, _ := drv.List(t.Context())
		for _, in := range insts {
			_ = drv.Remove(t.Context(), in.ID)
		}
	})
	time.Sleep(300 * time.Millisecond) // all idle now

	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, r := range reapers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.Sweep(t.Context())
			require.NoError(t, err)
			counts[i] = c
		}()
	}
	wg.Wait()
	require.Equal(t, n, counts[0]+counts[1], "each idle sandbox reaped exactly once")
	insts, err := drv.List(t.Context())
	require.NoError(t, err)
	require.Empty(t, insts)
	require.Equal(t, n, strings.Count(logs.String(), "reclaimed idle sandbox"))
}
