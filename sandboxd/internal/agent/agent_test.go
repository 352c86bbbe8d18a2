package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
)

func TestParseHexAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port int
	}{
		{"0100007F:0BB8", "127.0.0.1", 3000},
		{"00000000:1F90", "0.0.0.0", 8080},
		{"00000000000000000000000001000000:1435", "::1", 5173},
		{"00000000000000000000000000000000:0050", "::", 80},
	} {
		t.Run(tc.in, func(t *testing.T) {
			addr, port, ok := parseHexAddr(tc.in)
			require.True(t, ok)
			require.Equal(t, tc.addr, addr)
			require.Equal(t, tc.port, port)
		})
	}
	_, _, ok := parseHexAddr("zz:0050")
	require.False(t, ok)
}

// startAgent serves an in-process agent on a short unix socket path.
func startAgent(t *testing.T) *agentclient.Client { return startAgentIn(t, nil).Client }

// testAgent is an in-process agent: its client, its directory (holding the workspace "ws" and the state
// directory "state") and a stop that ends it as SIGTERM ends sandbox-agent.
type testAgent struct {
	*agentclient.Client
	dir  string
	stop func()
}

func (a *testAgent) ws(elem ...string) string {
	return filepath.Join(append([]string{a.dir, "ws"}, elem...)...)
}

// startAgentIn is startAgent with options adjusted by mod.
func startAgentIn(t *testing.T, mod func(dir string, o *Options)) *testAgent {
	dir, err := os.MkdirTemp("", "agt-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	opts := Options{Socket: filepath.Join(dir, "a.sock"), Workspace: filepath.Join(dir, "ws"), StateDir: filepath.Join(dir, "state"), OwnedPortsOnly: true}
	if mod != nil {
		mod(dir, &opts)
	}
	srv, err := New(opts)
	require.NoError(t, err)
	ln, err := net.Listen("unix", filepath.Join(dir, "a.sock"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeListener(ctx, ln) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return &testAgent{Client: agentclient.New(filepath.Join(dir, "a.sock"), os.Getpid()), dir: dir, stop: stop}
}

func TestExecDrainKeepsBackgroundWriterAlive(t *testing.T) {
	c := startAgent(t)
	ctx := t.Context()
	begin := time.Now()
	res, err := run(ctx, c, agentapi.ExecRequest{Command: "(while true; do echo tick; sleep 0.05; done) & echo $! > writer.pid; echo main done", Timeout: 10 * time.Second})
	require.NoError(t, err)
	require.Less(t, time.Since(begin), 2*time.Second)
	require.Contains(t, string(res.Stdout), "main done\n")
	res, err = run(ctx, c, agentapi.ExecRequest{Command: "cat writer.pid", Timeout: 10 * time.Second})
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
	require.NoError(t, err)
	// The writer outlives the exec, still writing into the drained pipe:
	// neither blocked on a full pipe nor killed by SIGPIPE.
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, syscall.Kill(pid, 0), "background writer died")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
}

// ran is a command's collected output and how it ended.
type ran struct {
	agentapi.ExecExit
	Stdout, Stderr []byte
}

// run runs a command to completion, keeping all its output.
func run(ctx context.Context, c *agentclient.Client, req agentapi.ExecRequest) (ran, error) {
	var out agentclient.Output
	exit, err := c.Exec(ctx, req, out.Write)
	return ran{ExecExit: exit, Stdout: out.Stdout, Stderr: out.Stderr}, err
}

// The agent streams all output, in order, whatever its size; a cap is the collector's.
func TestExecStreamIsUncappedAndOrdered(t *testing.T) {
	c := startAgent(t)
	var got []byte
	res, err := c.Exec(t.Context(), agentapi.ExecRequest{Command: "head -c 3000000 /dev/zero; echo end >&2; exit 3", Timeout: 10 * time.Second},
		func(stderr bool, p []byte) error {
			if !stderr {
				got = append(got, p...)
			}
			return nil
		})
	require.NoError(t, err)
	require.Len(t, got, 3000000)
	require.Equal(t, 3, res.ExitCode)

	out := agentclient.Output{Limit: 1024}
	_, err = c.Exec(t.Context(), agentapi.ExecRequest{Command: "head -c 3000 /dev/zero; echo err >&2", Timeout: 10 * time.Second}, out.Write)
	require.NoError(t, err)
	require.Len(t, out.Stdout, 1024)
	require.Equal(t, "err\n", string(out.Stderr))
	require.True(t, out.Truncated)
}

// The timeout is sandboxd's to choose: a request without one is refused, not given a number the
// agent would have to know.
func TestExecRequiresTimeout(t *testing.T) {
	c := startAgent(t)
	_, err := c.Exec(t.Context(), agentapi.ExecRequest{Command: "true"}, func(bool, []byte) error { return nil })
	var ae *agentclient.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, agentapi.CodeInvalid, ae.Code)

	begin := time.Now()
	res, err := run(t.Context(), c, agentapi.ExecRequest{Command: "echo start; sleep 30", Timeout: 2 * time.Second})
	require.NoError(t, err)
	require.True(t, res.TimedOut)
	require.Equal(t, "start\n", string(res.Stdout))
	require.Less(t, time.Since(begin), 10*time.Second)
}

func TestOwnedPortsOnly(t *testing.T) {
	c := startAgent(t)
	// A port of this test process (not a descendant of the agent) must not
	// be reported in host mode.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	ports, err := c.Ports(t.Context())
	require.NoError(t, err)
	for _, p := range ports {
		require.NotEqual(t, ln.Addr().(*net.TCPAddr).Port, p.Port)
	}
}
