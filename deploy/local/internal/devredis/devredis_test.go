package devredis

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestStart(t *testing.T) {
	tests := []struct {
		name     string
		embedded bool
		want     string
	}{
		{name: "embedded", embedded: true, want: "embedded"},
		{name: "redis-server", embedded: false, want: "redis-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.embedded {
				if _, err := exec.LookPath("redis-server"); err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatal("redis-server is required in CI")
					}
					t.Skip("redis-server not on PATH")
				}
			}
			s, err := Start(t.Context(), t.TempDir(), tt.embedded)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(s.Kind, tt.want), s.Kind)

			addr := strings.TrimSuffix(strings.TrimPrefix(s.URL, "redis://"), "/0")
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			_, err = c.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
			require.NoError(t, err)
			buf := make([]byte, 64)
			n := 0
			for n < len("+OK\r\n$1\r\nv\r\n") {
				m, err := c.Read(buf[n:])
				require.NoError(t, err)
				n += m
			}
			require.Equal(t, "+OK\r\n$1\r\nv\r\n", string(buf[:n]))
			require.NoError(t, c.Close())

			require.NoError(t, s.Stop(t.Context()))
			_, err = net.Dial("tcp", addr)
			require.Error(t, err, "server must be gone after Stop")
		})
	}
}

func TestPickPortAvoidsBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	got, err := pickPort(busy)
	require.NoError(t, err)
	require.NotEqual(t, busy, got)
}

// Expiry must behave on the embedded server as on a real one: the services' lockouts, rate windows and
// leases are keys with a TTL, some set inside Lua scripts.
func TestKeysExpire(t *testing.T) {
	for _, embedded := range []bool{true, false} {
		name := map[bool]string{true: "embedded", false: "redis-server"}[embedded]
		t.Run(name, func(t *testing.T) {
			if !embedded {
				if _, err := exec.LookPath("redis-server"); err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatal("redis-server is required in CI")
					}
					t.Skip("redis-server not on PATH")
				}
			}
			s, err := Start(t.Context(), t.TempDir(), embedded)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Stop(context.Background()) })
			opt, err := redis.ParseURL(s.URL)
			require.NoError(t, err)
			rdb := redis.NewClient(opt)
			t.Cleanup(func() { _ = rdb.Close() })
			ctx := t.Context()

			// A lockout counter (INCR then PEXPIRE in a script) and a lease (SET NX PX).
			incr := redis.NewScript(`local n = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], ARGV[1]) return n`)
			n, err := incr.Run(ctx, rdb, []string{"lockout"}, 300).Int()
			require.NoError(t, err)
			require.Equal(t, 1, n)
			ok, err := rdb.SetNX(ctx, "lease", "replica-a", 300*time.Millisecond).Result()
			require.NoError(t, err)
			require.True(t, ok)
			ok, err = rdb.SetNX(ctx, "lease", "replica-b", 300*time.Millisecond).Result()
			require.NoError(t, err)
			require.False(t, ok, "a held lease must not be taken")

			deadline := time.Now().Add(5 * time.Second)
			for {
				left, err := rdb.Exists(ctx, "lockout", "lease").Result()
				require.NoError(t, err)
				if left == 0 {
					break
				}
				require.True(t, time.Now().Before(deadline), "keys with a 300 ms TTL still exist after 5 s")
				time.Sleep(20 * time.Millisecond)
			}
			ok, err = rdb.SetNX(ctx, "lease", "replica-b", time.Second).Result()
			require.NoError(t, err)
			require.True(t, ok, "an expired lease is taken over")
		})
	}
}

// Parallel launchers and tests pick ports at the same moment, so the picked port may be taken before
// redis-server binds it. The launcher must then neither take the winner for its own Redis nor hang
// stopping a server that already exited: it starts again on another port.
func TestStartLosesThePortRace(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required in CI")
		}
		t.Skip("redis-server not on PATH")
	}
	foreignRedis := func(t *testing.T) int {
		s, err := Start(t.Context(), t.TempDir(), false)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Stop(context.Background()) })
		_, port, err := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(s.URL, "redis://"), "/0"))
		require.NoError(t, err)
		p, _ := strconv.Atoi(port)
		return p
	}
	silentListener := func(t *testing.T) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { _ = c.Close() }) // accepts and never answers
			}
		}()
		return l.Addr().(*net.TCPAddr).Port
	}
	for name, taken := range map[string]func(*testing.T) int{"another redis": foreignRedis, "a silent listener": silentListener} {
		t.Run(name, func(t *testing.T) {
			lost := taken(t)
			orig := pickPort
			t.Cleanup(func() { pickPort = orig })
			calls := 0
			pickPort = func(preferred int) (int, error) {
				calls++
				if calls == 1 {
					return lost, nil // someone bound it between our pick and redis-server's bind
				}
				return orig(preferred)
			}

			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			s, err := Start(ctx, t.TempDir(), false)
			require.NoError(t, err)
			require.Equal(t, 2, calls, "one retry on a new port")
			require.NotContains(t, s.URL, ":"+strconv.Itoa(lost)+"/", "never the winner's port")

			stopCtx, stopCancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer stopCancel()
			require.NoError(t, s.Stop(stopCtx))
		})
	}
}

// A redis-server that cannot start at all (here: its data directory is a file) is an error naming
// why, after a bounded number of attempts — never a launcher that waits forever.
func TestStartReportsARedisThatCannotStart(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required in CI")
		}
		t.Skip("redis-server not on PATH")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "appendonlydir"), []byte("not a directory"), 0o600))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	_, err := Start(ctx, dir, false)
	require.Error(t, err)
	require.ErrorContains(t, err, "redis-server did not start")
	require.NoError(t, ctx.Err(), "gave up on its own, before the deadline")
}
