package devredis

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

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
