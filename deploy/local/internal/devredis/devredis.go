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
	"strings"
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

// Stop shuts the server down; a redis-server child gets SIGTERM (it writes its AOF) and is waited for
// until ctx ends (then it is killed).
func (s *Server) Stop(ctx context.Context) error { return s.stop(ctx) }

// Start runs redis-server on PATH with dataDir for persistence, or miniredis when redis-server is absent
// (or forceEmbedded is set). It prefers port 6379 and takes a free port when that one is busy, so a
// Redis the developer already runs is never touched.
func Start(ctx context.Context, dataDir string, forceEmbedded bool) (*Server, error) {
	if path, lookErr := exec.LookPath("redis-server"); lookErr == nil && !forceEmbedded {
		return startRedisServer(ctx, path, dataDir)
	}
	port, err := pickPort(preferredPort)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
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

const (
	preferredPort = 6379
	// startAttempts bounds the retries when another process takes the picked port between the pick
	// and redis-server's bind (parallel launchers and tests pick ports at the same moment).
	startAttempts = 5
)

func startRedisServer(ctx context.Context, path, dataDir string) (*Server, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("redis data dir: %w", err)
	}
	logFile := filepath.Join(dataDir, "redis.log")
	var errs []error
	for attempt := range startAttempts {
		preferred := preferredPort
		if attempt > 0 {
			preferred = 0 // the preferred port was lost to someone else: any free one will do
		}
		port, err := pickPort(preferred)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// Its own process group so the terminal's Ctrl-C reaches only the launcher, which stops Redis
		// last; SIGTERM on the launcher's death so Redis writes its AOF even after a kill -9.
		g, err := procgroup.Start(path, procgroup.Options{
			Args: []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
				"--dir", dataDir, "--appendonly", "yes", "--save", "",
				"--protected-mode", "yes", "--logfile", logFile},
			DeathSignal: syscall.SIGTERM,
		})
		if err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		stop := func(ctx context.Context) error {
			grace := 10 * time.Second
			if d, ok := ctx.Deadline(); ok {
				grace = time.Until(d)
			}
			if err := g.Stop(grace); err != nil {
				return fmt.Errorf("redis-server: %w", err)
			}
			if err := g.Err(); err != nil {
				return fmt.Errorf("redis-server exited: %w", err)
			}
			return nil
		}
		version, err := waitPing(ctx, addr, g)
		if err == nil {
			return &Server{URL: "redis://" + addr + "/0", Kind: "redis-server " + version + " (data in " + dataDir + ")", stop: stop}, nil
		}
		_ = stop(context.Background())
		if !errors.Is(err, errExited) {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("port %d: %w (%s)", port, err, lastLine(logFile)))
	}
	return nil, fmt.Errorf("redis-server did not start: %w", errors.Join(errs...))
}

var errExited = errors.New("redis-server exited at start")

// waitPing polls until our redis-server answers PING, and returns its version. A Redis of someone
// else's that won the port race answers too: the process id in its INFO tells them apart.
func waitPing(ctx context.Context, addr string, g *procgroup.Group) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, pid, err := ping(addr); err == nil && pid == g.Pid() {
			return v, nil
		}
		select {
		case <-g.Done():
			return "", errExited
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", errors.New("redis-server did not answer PING within 10s")
		}
	}
}

// ping speaks just enough RESP to check liveness without pulling a client library into the launcher;
// it returns the server's version and process id from INFO.
func ping(addr string) (version string, pid int, err error) {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return "", 0, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", 0, err
	}
	if line != "+PONG\r\n" {
		return "", 0, fmt.Errorf("unexpected PING reply %q", line)
	}
	version = "unknown"
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return version, pid, nil
		}
		l = strings.TrimRight(l, "\r\n")
		if v, ok := strings.CutPrefix(l, "redis_version:"); ok {
			version = v
		}
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
			return version, pid, nil // process_id follows redis_version in INFO server
		}
	}
}

// lastLine is the last line redis-server logged (why it exited), or a note that there is none.
func lastLine(logFile string) string {
	b, err := os.ReadFile(logFile)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// pickPort returns preferred when nothing listens there (and it is not 0), else a free loopback port.
// A variable so a test can lose the race for a port on purpose.
var pickPort = func(preferred int) (int, error) {
	if preferred != 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(preferred))); err == nil {
			_ = l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port for redis: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
