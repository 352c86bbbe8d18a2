package stacktest

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
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/pkg/procgroup"
)

// Tests of Redis code run against a real redis-server, never a fake: Lua scripts, streams and
// consumer groups are exactly where fakes diverge.

// RedisBinary is the server executable looked up on PATH.
const RedisBinary = "redis-server"

// sharedDatabases is how many logical databases the shared server has; database 0 is never handed
// out, so a client that forgets its database number cannot touch another test's keys. Tests waiting
// for a database block until one is released.
const sharedDatabases = 64

const redisStartTimeout = 30 * time.Second

// Redis runs a dedicated redis-server for t on a free loopback port and returns its URL
// (redis://127.0.0.1:PORT/0). The server stops when t ends.
func Redis(t testing.TB) string {
	t.Helper()
	srv, err := launchRedis(t.TempDir(), 16)
	if err != nil {
		Unavailable(t, err)
		return ""
	}
	t.Cleanup(srv.stop)
	return srv.url(0)
}

// RedisSentinel runs a dedicated redis-server and a Sentinel monitoring it as master "mgx-test", and
// returns the redis+sentinel URL of that pair (redis+sentinel://127.0.0.1:PORT/0?master=mgx-test).
func RedisSentinel(t testing.TB) string {
	t.Helper()
	const master = "mgx-test"
	dir := t.TempDir()
	data, err := launchRedis(dir, 16)
	if err != nil {
		Unavailable(t, err)
		return ""
	}
	t.Cleanup(data.stop)
	sentinel := launchSentinel(t, dir, master, data.addr, "")
	return fmt.Sprintf("redis+sentinel://%s/0?master=%s", sentinel.addr, master)
}

// RedisCluster runs a dedicated one-node Redis Cluster owning all 16384 slots and returns its
// redis+cluster URL. One node is enough to exercise what cluster mode changes for a client: slot
// routing and CROSSSLOT errors for multi-key commands and scripts whose keys lack a common hash tag.
func RedisCluster(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := launchRedis(dir, 1, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	if err != nil {
		Unavailable(t, err)
		return ""
	}
	t.Cleanup(srv.stop)
	if err := assignAllSlots(srv.addr); err != nil {
		t.Fatalf("stacktest: set up cluster: %v", err)
	}
	return "redis+cluster://" + srv.addr
}

// Failover is a Sentinel-managed master with one replica, for tests that prove a client survives the
// master's death.
type Failover struct {
	// URL is the redis+sentinel URL clients connect with.
	URL string
	// Master and Replica are the data nodes' addresses at start.
	Master, Replica string
	master          *redisServer
}

// KillMaster kills the current master process (SIGKILL): the Sentinel notices within its down-after
// period and promotes the replica.
func (f *Failover) KillMaster() { f.master.stop() }

// RedisFailover runs a master, a replica of it and one Sentinel (quorum 1) with short detection and
// failover timeouts, so that a failover completes within a few seconds.
func RedisFailover(t testing.TB) *Failover {
	t.Helper()
	const name = "mgx-failover"
	dir := t.TempDir()
	master, err := launchRedis(mkdir(t, dir, "master"), 16)
	if err != nil {
		Unavailable(t, err)
		return nil
	}
	t.Cleanup(master.stop)
	mhost, mport, _ := net.SplitHostPort(master.addr)
	replica, err := launchRedis(mkdir(t, dir, "replica"), 16, "--replicaof", mhost, mport)
	if err != nil {
		t.Fatalf("stacktest: start replica: %v", err)
	}
	t.Cleanup(replica.stop)
	sentinel := launchSentinel(t, mkdir(t, dir, "sentinel"), name, master.addr,
		fmt.Sprintf("sentinel down-after-milliseconds %[1]s 500\nsentinel failover-timeout %[1]s 3000\nsentinel parallel-syncs %[1]s 1\n", name))
	return &Failover{
		URL:    fmt.Sprintf("redis+sentinel://%s/0?master=%s", sentinel.addr, name),
		Master: master.addr, Replica: replica.addr,
		master: master,
	}
}

func launchSentinel(t testing.TB, dir, master, masterAddr, extra string) *redisServer {
	t.Helper()
	host, port, _ := net.SplitHostPort(masterAddr)
	s, err := launchRedisWith(dir, func(p int) ([]string, error) {
		// Sentinel rewrites its config file, so it must be a real, writable file, not flags.
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n%s", p, dir, master, host, port, extra)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, err
		}
		return []string{conf, "--sentinel"}, nil
	})
	if err != nil {
		t.Fatalf("stacktest: start sentinel: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

// assignAllSlots gives the node every slot and waits for cluster_state:ok.
func assignAllSlots(addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer func() { _ = rdb.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	args := make([]any, 0, 2+16384)
	args = append(args, "CLUSTER", "ADDSLOTS")
	for slot := range 16384 {
		args = append(args, slot)
	}
	if err := rdb.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("CLUSTER ADDSLOTS: %w", err)
	}
	for {
		info, err := rdb.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster_state not ok within %s: %w", redisStartTimeout, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

var shared struct {
	once sync.Once
	srv  *redisServer
	err  error
	dbs  chan int // free database numbers
}

// SharedRedis returns the URL of a database that belongs to t alone, on a redis-server shared by the
// whole test binary (started on first use, stopped by Main). The database is flushed when t ends and
// then handed to another test. Much cheaper than Redis for packages with many tests.
//
// Isolation covers keys, scripts' keys and streams. Pub/Sub channels are global to a server, not per
// database: tests that publish must use channel names unique to the test.
func SharedRedis(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "stacktest-redis-")
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.err = launchRedis(dir, sharedDatabases)
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
		Unavailable(t, shared.err)
		return ""
	}
	var db int
	select {
	case db = <-shared.dbs:
	case <-t.Context().Done():
		t.Fatal("stacktest: no free Redis database before the test ended")
		return ""
	}
	url := shared.srv.url(db)
	t.Cleanup(func() {
		// Only a flushed database goes back: a test that fails to flush costs one database, never
		// another test's isolation.
		if err := flushDB(url); err != nil {
			t.Logf("stacktest: database %d not reused: %v", db, err)
			return
		}
		shared.dbs <- db
	})
	return url
}

func stopShared() {
	if shared.srv != nil {
		shared.srv.stop()
	}
}

// redisServer is one running redis-server process.
type redisServer struct {
	addr      string
	group     *procgroup.Group
	out       *Buffer
	dir       string
	removeDir bool
	stopOnce  sync.Once
}

func (s *redisServer) url(db int) string { return fmt.Sprintf("redis://%s/%d", s.addr, db) }

// stop kills the server: test data is thrown away, so there is nothing to shut down cleanly.
func (s *redisServer) stop() {
	s.stopOnce.Do(func() {
		s.group.Kill()
		if s.removeDir {
			_ = os.RemoveAll(s.dir)
		}
	})
}

// launchRedis starts a redis-server data node in dir, without persistence, and waits until it
// answers PING.
func launchRedis(dir string, databases int, extra ...string) (*redisServer, error) {
	return launchRedisWith(dir, func(port int) ([]string, error) {
		return append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no",
			"--dir", dir, "--databases", strconv.Itoa(databases),
		}, extra...), nil
	})
}

var errPortTaken = errors.New("port taken")

// launchRedisWith starts redis-server with the arguments args returns for a free port and waits
// until it answers PING. A port taken between allocation and bind is retried on a new one.
func launchRedisWith(dir string, args func(port int) ([]string, error)) (*redisServer, error) {
	bin, err := exec.LookPath(RedisBinary)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH (install it, e.g. apt-get install redis-server)", RedisBinary)
	}
	var lastErr error
	for range 5 {
		srv, err := launchRedisOnce(bin, dir, args)
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

func launchRedisOnce(bin, dir string, argsFor func(port int) ([]string, error)) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args, err := argsFor(port)
	if err != nil {
		return nil, err
	}
	out := &Buffer{}
	g, err := procgroup.Start(bin, procgroup.Options{Args: args, Output: out})
	if err != nil {
		return nil, err
	}
	srv := &redisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), group: g, out: out, dir: dir}
	if err := waitPong(srv); err != nil {
		srv.stop()
		if strings.Contains(out.String(), "Address already in use") {
			return nil, fmt.Errorf("%w: %s", errPortTaken, srv.addr)
		}
		return nil, fmt.Errorf("%s on %s: %w; output:\n%s", bin, srv.addr, err, out.String())
	}
	return srv, nil
}

// waitPong polls with PING until the server answers, exits or the start timeout passes.
func waitPong(srv *redisServer) error {
	deadline := time.Now().Add(redisStartTimeout)
	for {
		if ping(srv.addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %s", redisStartTimeout)
		}
		select {
		case <-srv.group.Done():
			return errors.New("exited before answering PING")
		case <-time.After(10 * time.Millisecond):
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
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line)) // e.g. -LOADING
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

func mkdir(t testing.TB, parent, name string) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatalf("stacktest: %v", err)
	}
	return d
}
