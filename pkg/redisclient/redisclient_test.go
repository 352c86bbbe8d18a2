package redisclient_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestNewAgainstRealServers(t *testing.T) {
	tests := []struct {
		name     string
		start    func(testing.TB) string
		wantMode redisclient.Mode
	}{
		{"single node", stacktest.Redis, redisclient.ModeSingle},
		{"sentinel", stacktest.RedisSentinel, redisclient.ModeSentinel},
		{"cluster", stacktest.RedisCluster, redisclient.ModeCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.start(t)
			mode, err := redisclient.ParseMode(url)
			require.NoError(t, err)
			require.Equal(t, tt.wantMode, mode)

			rdb, err := redisclient.New(t.Context(), url, redisclient.WithClientName("mgx-test"))
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })

			require.NoError(t, rdb.Set(t.Context(), "k", "v", 0).Err())
			require.Equal(t, "v", rdb.Get(t.Context(), "k").Val())

			// Hash-tagged keys share a slot, so a script over both works
			// on every deployment, the cluster included.
			script := redis.NewScript(`redis.call("SET", KEYS[1], ARGV[1]); return redis.call("SET", KEYS[2], ARGV[1])`)
			require.NoError(t, script.Run(t.Context(), rdb, []string{"s:{a}:x", "s:{a}:y"}, "1").Err())
		})
	}
}

func TestNewClusterRefusesCrossSlotScripts(t *testing.T) {
	rdb, err := redisclient.New(t.Context(), stacktest.RedisCluster(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })

	script := redis.NewScript(`return redis.call("MSET", KEYS[1], "1", KEYS[2], "1")`)
	err = script.Run(t.Context(), rdb, []string{"session:{s1}:meta", "session:{s2}:meta"}).Err()
	require.ErrorContains(t, err, "CROSSSLOT")
}

func TestNewSetsClientName(t *testing.T) {
	rdb, err := redisclient.New(t.Context(), stacktest.SharedRedis(t), redisclient.WithClientName("agentd"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	name, err := rdb.Do(t.Context(), "CLIENT", "GETNAME").Text()
	require.NoError(t, err)
	require.Equal(t, "agentd", name)
}

func TestNewTracesWithoutStatements(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.WithoutCancel(t.Context())) })

	rdb, err := redisclient.New(t.Context(), stacktest.SharedRedis(t), redisclient.WithTracerProvider(tp))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	require.NoError(t, rdb.Set(t.Context(), "user-data", "very private value", 0).Err())

	var found bool
	for _, s := range rec.Ended() {
		if s.Name() != "set" {
			continue
		}
		found = true
		for _, a := range s.Attributes() {
			require.NotContains(t, a.Value.String(), "very private value", "attribute %s", a.Key)
		}
	}
	require.True(t, found, "a span for SET")
}

func TestNewFailsClearly(t *testing.T) {
	// A port nothing listens on: bound and released.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := lis.Addr().String()
	require.NoError(t, lis.Close())

	tests := []struct {
		name    string
		url     string
		wantErr []string
	}{
		{
			name:    "nothing listening",
			url:     fmt.Sprintf("redis://:topsecret@%s/0", deadAddr),
			wantErr: []string{"ping redis://:xxxxx@" + deadAddr + "/0", "single", "connection refused"},
		},
		{
			name:    "unparseable",
			url:     "redis+sentinel://:topsecret@h1/0",
			wantErr: []string{"redis+sentinel://:xxxxx@h1/0", "master"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := redisclient.New(t.Context(), tt.url, redisclient.WithPingTimeout(2*time.Second))
			require.Error(t, err)
			require.Less(t, time.Since(start), 10*time.Second, "bounded by the ping timeout")
			require.NotContains(t, err.Error(), "topsecret")
			for _, s := range tt.wantErr {
				require.True(t, strings.Contains(err.Error(), s), "error %q should contain %q", err, s)
			}
		})
	}
}

func TestMain(m *testing.M) { stacktest.Main(m) }

// TestSentinelFailover kills the master under a client made by New and shows the client keeps
// working against the promoted replica, with the data written before the failover intact.
func TestSentinelFailover(t *testing.T) {
	f := stacktest.RedisFailover(t)
	rdb, err := redisclient.New(t.Context(), f.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })

	ctx := t.Context()
	require.NoError(t, rdb.Set(ctx, "before", "kept", 0).Err())
	// WAIT makes the write durable on the replica before the master dies, as a production setup with
	// min-replicas-to-write would.
	require.Equal(t, int64(1), rdb.Do(ctx, "WAIT", 1, 5000).Val())
	require.Equal(t, f.Master, masterAddr(t, rdb))

	f.KillMaster()

	// Writes fail while Sentinel detects the death and promotes the replica, then succeed again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := rdb.Set(ctx, "after", "written", 0).Err()
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "no write succeeded within 30s of the failover: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, f.Replica, masterAddr(t, rdb), "the replica was promoted")
	require.Equal(t, "kept", rdb.Get(ctx, "before").Val())
	require.Equal(t, "written", rdb.Get(ctx, "after").Val())
}

// masterAddr asks the node the client writes to for its own port, to tell which node is master.
func masterAddr(t *testing.T, rdb redis.UniversalClient) string {
	t.Helper()
	info, err := rdb.Info(t.Context(), "server", "replication").Result()
	require.NoError(t, err)
	require.Contains(t, info, "role:master")
	for _, line := range strings.Split(info, "\r\n") {
		if port, ok := strings.CutPrefix(line, "tcp_port:"); ok {
			return net.JoinHostPort("127.0.0.1", port)
		}
	}
	t.Fatal("no tcp_port in INFO")
	return ""
}
