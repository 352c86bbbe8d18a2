package agentclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
)

func TestMain(m *testing.M) { stacktest.Main(m, stacktest.Binaries("sandbox-agent")) }

// startNetworkAgent runs the real sandbox-agent as a pod runs it: on TCP, behind a secret file.
func startNetworkAgent(t *testing.T, secret string) (addr string, proc *stacktest.Proc) {
	t.Helper()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(secret+"\n"), 0o400))
	addr = stacktest.Addr(t)
	proc = stacktest.Start(t, "sandbox-agent", stacktest.Bin(t, "sandbox-agent"), nil,
		"-listen-tcp", addr, "-secret-file", secretFile, "-workspace", filepath.Join(dir, "ws"), "-state-dir", filepath.Join(dir, "state"))
	stacktest.Eventually(t, 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil || proc.Exited()
	}, "agent listening on %s", addr)
	require.False(t, proc.Exited(), proc.Output())
	return addr, proc
}

func secretOf(s string) agentclient.SecretFunc {
	return func(context.Context) ([]byte, error) { return []byte(s), nil }
}

func TestNetworkAgentDemandsItsSecret(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef0123456789abcdef"
	addr, _ := startNetworkAgent(t, secret)

	t.Run("the right secret is served", func(t *testing.T) {
		c := agentclient.NewNetwork(addr, nil, secretOf(secret))
		defer c.Close()
		h, err := c.Health(t.Context())
		require.NoError(t, err)
		require.NotZero(t, h.PID)
		out := agentclient.Output{Limit: 1 << 10}
		res, err := c.Exec(t.Context(), agentapi.ExecRequest{Command: "echo over tcp", Timeout: 10 * time.Second}, out.Write)
		require.NoError(t, err)
		require.Zero(t, res.ExitCode)
		require.Equal(t, "over tcp\n", string(out.Stdout))
	})

	t.Run("a wrong secret is refused", func(t *testing.T) {
		for _, wrong := range []string{strings.Replace(secret, "0", "1", 1), secret + "x", "short"} {
			c := agentclient.NewNetwork(addr, nil, secretOf(wrong))
			_, err := c.Health(t.Context())
			require.ErrorIs(t, err, agentapi.ErrDenied, "secret %q", wrong)
			c.Close()
		}
	})

	t.Run("a connection without the secret gets no HTTP answer", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(agentapi.AuthTimeout+10*time.Second)))
		_, err = io.WriteString(conn, "GET "+agentapi.PathHealth+" HTTP/1.1\r\nHost: agent\r\n\r\n")
		require.NoError(t, err)
		// The agent answers a plain request with its challenge and then "denied": never with HTTP.
		got, err := io.ReadAll(conn)
		if err != nil {
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the agent kept an unauthenticated connection open")
		}
		require.True(t, strings.HasPrefix(string(got), agentapi.AuthBanner), "%q", got)
		require.NotContains(t, string(got), "HTTP/1.1")
		require.True(t, strings.HasSuffix(string(got), "denied\n"), "%q", got)
	})

	t.Run("a peer that stays silent is dropped after the handshake timeout", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for the handshake timeout")
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(agentapi.AuthTimeout+20*time.Second)))
		start := time.Now()
		_, err = io.ReadAll(conn)
		require.NoError(t, err, "the agent closes the connection itself")
		require.Less(t, time.Since(start), agentapi.AuthTimeout+15*time.Second)
	})
}

func TestNetworkAgentRefusesToStartWithoutASecret(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"no secret file":     {"-listen-tcp", "127.0.0.1:0"},
		"a missing file":     {"-listen-tcp", "127.0.0.1:0", "-secret-file", filepath.Join(dir, "nope")},
		"a too short secret": {"-listen-tcp", "127.0.0.1:0", "-secret-file", writeFile(t, dir, "short", "abc")},
	} {
		t.Run(name, func(t *testing.T) {
			p := stacktest.Start(t, "sandbox-agent", stacktest.Bin(t, "sandbox-agent"), nil,
				append(args, "-workspace", filepath.Join(dir, "ws"), "-state-dir", filepath.Join(dir, "state"))...)
			select {
			case <-p.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("the agent serves on TCP without a valid secret")
			}
			require.Error(t, p.Err())
			require.Contains(t, p.Output(), "secret")
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
