package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Failover is a Sentinel-managed master with one replica, for tests that prove a client survives
// the master's death.
type Failover struct {
	// URL is the redis+sentinel URL clients connect with.
	URL string
	// Master and Replica are the data nodes' addresses at start.
	Master, Replica string
	master          *server
}

// KillMaster kills the current master process (SIGKILL): the Sentinel notices within its
// down-after period and promotes the replica.
func (f *Failover) KillMaster() { f.master.stop() }

// StartFailover runs a master, a replica of it and one Sentinel (quorum 1) with short detection and
// failover timeouts, so that a failover completes within a few seconds.
func StartFailover(t testing.TB) *Failover {
	t.Helper()
	const name = "mgx-failover"
	dir := t.TempDir()
	master, err := launch(mkdir(t, dir, "master"), 16)
	if err != nil {
		unavailable(t, err)
		return nil
	}
	t.Cleanup(master.stop)
	mhost, mport, _ := net.SplitHostPort(master.addr)
	replica, err := launch(mkdir(t, dir, "replica"), 16, "--replicaof", mhost, mport)
	if err != nil {
		t.Fatalf("redistest: start replica: %v", err)
		return nil
	}
	t.Cleanup(replica.stop)

	sdir := mkdir(t, dir, "sentinel")
	sentinel, err := launchWith(sdir, func(port int) ([]string, error) {
		conf := filepath.Join(sdir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s %s %s 1\n"+
			"sentinel down-after-milliseconds %s 500\n"+
			"sentinel failover-timeout %s 3000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, sdir, name, mhost, mport, name, name, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, err
		}
		return []string{conf, "--sentinel"}, nil
	})
	if err != nil {
		t.Fatalf("redistest: start sentinel: %v", err)
		return nil
	}
	t.Cleanup(sentinel.stop)
	return &Failover{
		URL:    fmt.Sprintf("redis+sentinel://%s/0?master=%s", sentinel.addr, name),
		Master: master.addr, Replica: replica.addr,
		master: master,
	}
}

func mkdir(t testing.TB, parent, name string) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return d
}
