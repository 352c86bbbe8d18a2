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

// Start runs redis-server on PATH with dataDir for persistence, or miniredis when redis-server is absent
// (or forceEmbedded is set). It prefers port 6379 and takes a free port when that one is busy, so a
// Redis the developer already runs is never touched.
func Start(ctx context.Context, dataDir string, forceEmbedded bool) (*Server, error) {
	port, err := pickPort(6379)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if path, lookErr := exec.LookPath("redis-server"); lookErr == nil && !forceEmbedded {
		return startRedisServer(ctx, path, dataDir, port, addr)
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
	cmd := exec.Command(path,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", dataDir, "--appendonly", "yes", "--save", "",
		"--protected-mode", "yes", "--logfile", filepath.Join(dataDir, "redis.log"))
	// Own process group so the terminal's Ctrl-C reaches only the launcher, which stops Redis last;
	// Pdeathsig so Redis does not outlive a launcher killed with -9.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func(ctx context.Context) error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("redis-server exited: %w", err)
			}
			return nil
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return errors.Join(fmt.Errorf("redis-server did not stop in time: %w", ctx.Err()), <-done)
		}
	}
	version, err := waitPing(ctx, addr, done)
	if err != nil {
		_ = stop(context.Background())
		return nil, err
	}
	return &Server{URL: "redis://" + addr + "/0", Kind: "redis-server " + version + " (data in " + dataDir + ")", stop: stop}, nil
}

// waitPing polls until the server answers PING, and returns its version from INFO.
func waitPing(ctx context.Context, addr string, exited <-chan error) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, err := ping(addr); err == nil {
			return v, nil
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("redis-server exited at start: %w", err)
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
