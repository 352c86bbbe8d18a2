package stacktest

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// Ports handed out by this process, never handed out twice: the kernel may return a port it just
// gave us again once we released it, and two services of one test must not be told the same port.
var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// Port returns a loopback TCP port nothing listens on. It is found by binding port 0 and releasing
// it, so another process can take it before the service it is meant for binds; tests that can give
// a service a listener, or read back the address it bound (":0"), should prefer that.
func Port(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("stacktest: free port: %v", err)
	}
	return p
}

// Addr is Port as "127.0.0.1:PORT".
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}

func freePort() (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	// Hold every candidate until a fresh one is found, so the kernel cannot hand back one we refused.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		if !ports.used[p] {
			ports.used[p] = true
			return p, nil
		}
	}
}
