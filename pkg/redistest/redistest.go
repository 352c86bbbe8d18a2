// Package redistest runs real redis-server processes for tests. Tests of
// Redis code run against the real server, never a fake: Lua scripts,
// streams and consumer groups are exactly where fakes diverge.
//
// Start gives a test its own server. Shared gives it a private database on
// one server per test binary, which is much cheaper for packages with many
// tests; call Main from TestMain to stop that server cleanly. StartSentinel
// and StartCluster give the other deployments redisclient supports; a store
// whose Lua scripts must work on a cluster tests its hash tags against
// StartCluster.
//
// When redis-server is not on PATH the test is skipped, unless CI is true:
// in CI nothing that needs Redis may be skipped, so the test fails.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary is the server executable looked up on PATH.
const Binary = "redis-server"

// sharedDatabases is how many logical databases the shared server has;
// database 0 is never handed out, so a client that forgets its database
// number cannot touch another test's keys. Tests waiting for a database
// block until one is released.
const sharedDatabases = 64

const startTimeout = 10 * time.Second

// Start runs a dedicated redis-server for t on a free loopback port and
// returns its URL (redis://127.0.0.1:PORT/0). The server stops when t ends.
func Start(t testing.TB) string {
	t.Helper()
	srv, err := launch(t.TempDir(), 16)
	if err != nil {
		unavailable(t, err)
		return ""
	}
	t.Cleanup(srv.stop)
	return srv.url(0)
}

// StartSentinel runs a dedicated redis-server and a Sentinel monitoring it
// as master "mgx-test", and returns the redis+sentinel URL of that pair
// (redis+sentinel://127.0.0.1:PORT/0?master=mgx-test). Both stop when t ends.
func StartSentinel(t testing.TB) string {
	t.Helper()
	const master = "mgx-test"
	dir := t.TempDir()
	data, err := launch(dir, 16)
	if err != nil {
		unavailable(t, err)
		return ""
	}
	t.Cleanup(data.stop)

	conf := filepath.Join(dir, "sentinel.conf")
	sentinel, err := launchWith(dir, func(port int) ([]string, error) {
		host, dataPort, _ := net.SplitHostPort(data.addr)
		// Sentinel rewrites its config file, so it must be a real,
		// writable file, not flags.
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n",
			port, dir, master, host, dataPort)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, err
		}
		return []string{conf, "--sentinel"}, nil
	})
	if err != nil {
		t.Fatalf("redistest: start sentinel: %v", err)
		return ""
	}
	t.Cleanup(sentinel.stop)
	return fmt.Sprintf("redis+sentinel://%s/0?master=%s", sentinel.addr, master)
}

// StartCluster runs a dedicated one-node Redis Cluster owning all 16384
// slots and returns its redis+cluster URL. One node is enough to exercise
// what cluster mode changes for a client: slot routing and CROSSSLOT errors
// for multi-key commands and scripts whose keys lack a common hash tag.
func StartCluster(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := launch(dir, 1,
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
	)
	if err != nil {
		unavailable(t, err)
		return ""
	}
	t.Cleanup(srv.stop)
	if err := assignAllSlots(srv.addr); err != nil {
		t.Fatalf("redistest: set up cluster: %v", err)
		return ""
	}
	return "redis+cluster://" + srv.addr
}

// assignAllSlots gives the node every slot and waits for cluster_state:ok.
func assignAllSlots(addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer func() { _ = rdb.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	args := make([]any, 0, 2+16384)
	args = append(args, "CLUSTER", "ADDSLOTS")
	for slot := range 16384 {
		args = append(args, slot)
	}
	if err := rdb.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("CLUSTER ADDSLOTS: %w", err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := rdb.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster_state not ok within %s: %w", startTimeout, err)
		case <-tick.C:
		}
	}
}

var shared struct {
	once sync.Once
	srv  *server
	err  error
	dbs  chan int // free database numbers
}

// Shared returns the URL of a database that belongs to t alone, on a
// redis-server shared by the whole test binary (started on first use). The
// database is flushed when t ends and then handed to another test.
//
// Isolation covers keys, scripts' keys and streams. Pub/Sub channels are
// global to a server, not per database: tests that publish must use channel
// names unique to the test (e.g. derived from t.Name()).
func Shared(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.err = launch(dir, sharedDatabases)
		if shared.err != nil {
			_ = os.RemoveAll(dir)
			return
		}
		shared.srv.removeDir = true
		shared.dbs = make(chan int, sharedDatabases-1)
		for db := 1; db < sharedDatabases; db++ {
			shared.dbs <- db
		}
	})
	if shared.err != nil {
		unavailable(t, shared.err)
		return ""
	}

	var db int
	select {
	case db = <-shared.dbs:
	case <-t.Context().Done():
		t.Fatal("redistest: no free database before the test ended")
		return ""
	}
	url := shared.srv.url(db)
	t.Cleanup(func() {
		// Only a flushed database goes back: a test that fails to flush
		// costs one database, never another test's isolation.
		if err := flushDB(url); err != nil {
			t.Logf("redistest: database %d not reused: %v", db, err)
			return
		}
		shared.dbs <- db
	})
	return url
}

// Main runs the package's tests and then stops the shared server, if one
// was started. Use it as
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
// Without it the shared server still dies with the test binary on Linux
// (parent-death signal), but its temporary directory is left behind.
func Main(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.stop()
	}
	os.Exit(code)
}

// CI reports whether the CI environment variable is true.
func CI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if CI() {
		t.Fatalf("redistest: %v (CI=true: tests needing Redis must run, install redis-server)", err)
		return
	}
	t.Skipf("redistest: %v; skipping (install redis-server, e.g. apt-get install redis-server, to run this test)", err)
}

// server is one running redis-server process.
type server struct {
	addr      string
	cmd       *exec.Cmd
	exited    chan struct{}
	dir       string
	removeDir bool
	stopOnce  sync.Once
}

func (s *server) url(db int) string {
	return fmt.Sprintf("redis://%s/%d", s.addr, db)
}

func (s *server) stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
		if s.removeDir {
			_ = os.RemoveAll(s.dir)
		}
	})
}

// launch starts a redis-server data node in dir and waits until it answers
// PING.
func launch(dir string, databases int, extra ...string) (*server, error) {
	return launchWith(dir, func(port int) ([]string, error) {
		return append([]string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--databases", strconv.Itoa(databases),
		}, extra...), nil
	})
}

// launchWith starts redis-server with the arguments args returns for a free
// port and waits until it answers PING.
func launchWith(dir string, args func(port int) ([]string, error)) (*server, error) {
	bin, err := exec.LookPath(Binary)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH", Binary)
	}
	// The free port is found by binding :0 and releasing it, so another
	// process can take it before redis-server binds; retry on a new port.
	var lastErr error
	for range 5 {
		srv, err := launchOnce(bin, dir, args)
		if err == nil {
			return srv, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, lastErr
}

var errPortTaken = errors.New("port taken")

func launchOnce(bin, dir string, argsFor func(port int) ([]string, error)) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args, err := argsFor(port)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	srv := &server{
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd:    cmd,
		exited: make(chan struct{}),
		dir:    dir,
	}
	go func() {
		_ = cmd.Wait()
		close(srv.exited)
	}()

	if err := waitReady(srv); err != nil {
		srv.stop()
		log := out.String()
		if strings.Contains(log, "Address already in use") {
			return nil, fmt.Errorf("%w: %s", errPortTaken, srv.addr)
		}
		return nil, fmt.Errorf("%s on %s: %w; output:\n%s", bin, srv.addr, err, log)
	}
	return srv, nil
}

// waitReady polls with PING until the server answers, exits or the start
// timeout passes.
func waitReady(srv *server) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if ping(srv.addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %s", startTimeout)
		}
		select {
		case <-srv.exited:
			return errors.New("exited before answering PING")
		case <-tick.C:
		}
	}
}

// ping speaks raw RESP so readiness checks open no client pools.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		// e.g. "-LOADING" while a dataset loads
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func flushDB(url string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer func() { _ = rdb.Close() }()
	// Runs in t.Cleanup, when t.Context() is already canceled.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rdb.FlushDB(ctx).Err()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects the server's output, written by exec's copying
// goroutine and read by the test on failure.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
