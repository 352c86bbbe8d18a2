package grpcserver

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestListen(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the address
		wantNet string
		wantErr error
		errText string
	}{
		{
			name:    "tcp",
			setup:   func(*testing.T, string) string { return "127.0.0.1:0" },
			wantNet: "tcp",
		},
		{
			name:    "unix absolute",
			setup:   func(_ *testing.T, dir string) string { return "unix://" + filepath.Join(dir, "a.sock") },
			wantNet: "unix",
		},
		{
			name:    "unix short form",
			setup:   func(_ *testing.T, dir string) string { return "unix:" + filepath.Join(dir, "b.sock") },
			wantNet: "unix",
		},
		{
			name: "stale socket replaced",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "stale.sock")
				l, err := net.Listen("unix", p)
				require.NoError(t, err)
				// Leave the file behind as a crashed process would.
				l.(*net.UnixListener).SetUnlinkOnClose(false)
				require.NoError(t, l.Close())
				return "unix://" + p
			},
			wantNet: "unix",
		},
		{
			name: "live socket refused",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "live.sock")
				l, err := net.Listen("unix", p)
				require.NoError(t, err)
				t.Cleanup(func() { _ = l.Close() })
				return "unix://" + p
			},
			wantErr: syscall.EADDRINUSE,
		},
		{
			name: "regular file refused",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "file")
				require.NoError(t, os.WriteFile(p, []byte("keep me"), 0o600))
				return "unix://" + p
			},
			errText: "not a socket",
		},
		{
			name:    "empty unix path",
			setup:   func(*testing.T, string) string { return "unix://" },
			errText: "empty unix socket path",
		},
		{
			name:    "bad tcp address",
			setup:   func(*testing.T, string) string { return "127.0.0.1:notaport" },
			errText: "listen 127.0.0.1:notaport",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis, err := Listen(tt.setup(t, t.TempDir()))
			switch {
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
			case tt.errText != "":
				require.ErrorContains(t, err, tt.errText)
			default:
				require.NoError(t, err)
				t.Cleanup(func() { _ = lis.Close() })
				require.Equal(t, tt.wantNet, lis.Addr().Network())
			}
		})
	}
}
