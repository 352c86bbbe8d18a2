// Package devredis gives `make run` a Redis: a real redis-server when one is on PATH, otherwise an
// embedded Redis-protocol server (miniredis) inside the launcher process. It is for local runs only;
// production points the services' *_REDIS_URL at a managed Redis, Sentinel or Cluster.
package devredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/mgx-ai/mgx/pkg/procgroup"
)

// Server is a running Redis for the local stack.
type Server struct {
	// URL is what the services get as their *_REDIS_URL.
	URL string
	// Kind says what runs: "redis-server <version>" or "embedded (miniredis)".
	Kind string
	stop func(context.Context) error
}

// Stop shuts the server down; a redis-server child gets SIGTERM (it writes its AOF) and is waited for.
func (s *Server) Stop(ctx context.Context) error { return s.stop(ctx) }

// Options configures Start.
type Options struct {
	// DataDir is redis-server's directory for persistence (unused by the embedded server).
	DataDir string
	// ForceEmbedded runs the embedded server even when redis-server is on PATH.
	ForceEmbedded bool
	// Port is the loopback port to listen on; 0 prefers 6379 and takes a free port when that one is
	// busy, so a Redis the developer already runs is never touched.
	Port int
}

// Start runs redis-server on PATH, or the embedded server when redis-server is absent (or
// o.ForceEmbedded is set).
func Start(ctx context.Context, o Options) (*Server, error) {
	port := o.Port
	if port == 0 {
		var err error
		if port, err = pickPort(6379); err != nil {
			return nil, err
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if path, lookErr := exec.LookPath("redis-server"); lookErr == nil && !o.ForceEmbedded {
		return startRedisServer(ctx, path, o.DataDir, port, addr)
	}
	m := miniredis.NewMiniRedis()
	// miniredis keeps TTLs frozen unless told to follow the clock; the services build login lockouts,
	// rate windows, run leases and takeovers on expiry, so without this a lockout lasts until restart.
	m.ClockTTL(true)
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start embedded redis on %s: %w", addr, err)
	}
	return &Server{
		URL:  "redis://" + addr + "/0",
		Kind: "embedded Redis-protocol server (miniredis; in memory, lost on exit — install redis-server for a real one)",
		stop: func(context.Context) error { m.Close(); return nil },
	}, nil
}

func startRedisServer(ctx context.Context, path, dataDir string, port int, addr string) (*Server, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("redis data dir: %w", err)
	}
	// A process group of its own, as every child of the launcher: the terminal's Ctrl-C reaches only
	// the launcher, which stops Redis last. SIGTERM as the parent-death signal, so a launcher killed
	// with -9 still leaves Redis time to write its AOF. Redis needs nothing of the launcher's
	// environment, so it gets none.
	g, err := procgroup.Start(path, procgroup.Options{
		Args: []string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--dir", dataDir, "--appendonly", "yes", "--save", "",
			"--protected-mode", "yes", "--logfile", filepath.Join(dataDir, "redis.log"),
		},
		DeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop := func(ctx context.Context) error {
		grace := defaultStopGrace
		if deadline, ok := ctx.Deadline(); ok {
			grace = max(time.Until(deadline), 0)
		}
		if err := g.Stop(grace); err != nil {
			return errors.Join(fmt.Errorf("redis-server did not stop within %s: %w", grace.Round(time.Millisecond), err), g.Err())
		}
		if err := g.Err(); err != nil {
			return fmt.Errorf("redis-server exited: %w", err)
		}
		return nil
	}
	version, err := waitPing(ctx, addr, g)
	if err != nil {
		_ = stop(context.Background())
		return nil, err
	}
	return &Server{URL: "redis://" + addr + "/0", Kind: "redis-server " + version + " (data in " + dataDir + ")", stop: stop}, nil
}

// defaultStopGrace is how long Stop waits for redis-server to write its AOF and exit when its context
// sets no deadline.
const defaultStopGrace = 10 * time.Second

// waitPing polls until the server answers PING, and returns its version from INFO.
func waitPing(ctx context.Context, addr string, g *procgroup.Group) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, err := ping(addr); err == nil {
			return v, nil
		}
		select {
		case <-g.Done():
			return "", fmt.Errorf("redis-server exited at start: %w", g.Err())
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", errors.New("redis-server did not answer PING within 10s")
		}
	}
}

// ping speaks just enough RESP to check liveness without pulling a client library into the launcher.
func ping(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if line != "+PONG\r\n" {
		return "", fmt.Errorf("unexpected PING reply %q", line)
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "unknown", nil
		}
		if len(l) > 14 && l[:14] == "redis_version:" {
			return l[14 : len(l)-2], nil
		}
	}
}

// pickPort returns preferred when nothing listens there, else a free loopback port.
func pickPort(preferred int) (int, error) {
	if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(preferred))); err == nil {
		_ = l.Close()
		return preferred, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port for redis: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
