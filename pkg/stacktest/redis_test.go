package stacktest

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestRedis(t *testing.T) {
	var url string
	t.Run("server answers while the test runs", func(t *testing.T) {
		url = Redis(t)
		rdb := client(t, url)
		require.NoError(t, rdb.Set(t.Context(), "k", "v", 0).Err())
		require.Equal(t, "v", rdb.Get(t.Context(), "k").Val())
		// Persistence is off: nothing may be written to disk by tests.
		cfg := rdb.ConfigGet(t.Context(), "appendonly").Val()
		require.Equal(t, "no", cfg["appendonly"])
	})
	// The subtest's cleanup killed the server.
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	require.Error(t, ping(addr), "server must be gone after its test ended")
}

func TestSharedRedisIsolatesTests(t *testing.T) {
	var mu sync.Mutex
	urls := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for i := range 8 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				url := SharedRedis(t)
				mu.Lock()
				require.False(t, urls[url], "database handed to two running tests")
				urls[url] = true
				mu.Unlock()

				rdb := client(t, url)
				// Every test writes the same key; with isolation each sees
				// only its own value and an otherwise empty database.
				require.Equal(t, int64(0), rdb.DBSize(t.Context()).Val())
				require.NoError(t, rdb.Set(t.Context(), "same-key", url, 0).Err())
				require.Equal(t, url, rdb.Get(t.Context(), "same-key").Val())
			})
		}
	})
	// After the parallel group, every database used is flushed again.
	for url := range urls {
		opts, err := redis.ParseURL(url)
		require.NoError(t, err)
		require.NotZero(t, opts.DB, "database 0 is never handed out")
		rdb := redis.NewClient(opts)
		require.Equal(t, int64(0), rdb.DBSize(t.Context()).Val(), url)
		require.NoError(t, rdb.Close())
	}
}

// recordingTB captures Skip/Fatal instead of ending the test.
type recordingTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordingTB) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recordingTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestRedisMissingBinary(t *testing.T) {
	tests := []struct {
		ci       string
		wantSkip bool
	}{
		{"", true},
		{"false", true},
		{"true", false},
		{"1", false},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv("CI", tt.ci)
			rec := &recordingTB{TB: t}
			require.Empty(t, Redis(rec))
			if tt.wantSkip {
				require.Contains(t, rec.skipped, "redis-server not found")
				require.Empty(t, rec.fatal)
			} else {
				require.Contains(t, rec.fatal, "CI=true")
				require.Empty(t, rec.skipped)
			}
		})
	}
}
