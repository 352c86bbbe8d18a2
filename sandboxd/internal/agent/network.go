package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// In a Kubernetes pod the agent cannot hand sandboxd a unix socket: it listens on TCP, and every
// connection must first prove it knows the sandbox's secret (agentapi.ServerHandshake). Docker and
// local sandboxes keep the unix socket, whose directory's permissions are their access control.

// ReadSecret reads the per-sandbox secret sandboxd generated (a file of a mounted Kubernetes Secret).
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent secret: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < agentapi.MinSecretLen {
		return nil, fmt.Errorf("agent secret in %s: shorter than %d bytes", path, agentapi.MinSecretLen)
	}
	return secret, nil
}

// ListenSecret listens on addr (host:port) and returns a listener whose connections are served only
// after their peer passed the handshake on secret.
func ListenSecret(addr string, secret []byte) (net.Listener, error) {
	if len(secret) < agentapi.MinSecretLen {
		return nil, fmt.Errorf("agent secret shorter than %d bytes", agentapi.MinSecretLen)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return &secretListener{Listener: ln, secret: secret}, nil
}

type secretListener struct {
	net.Listener
	secret []byte
}

// Accept returns connections at once; the handshake runs on the connection's first read or write, in
// the goroutine the HTTP server gives each connection, so a peer that connects and stalls holds up
// nobody else.
func (l *secretListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &secretConn{Conn: c, secret: l.secret}, nil
}

type secretConn struct {
	net.Conn
	secret []byte
	once   sync.Once
	err    error
}

var errUnauthenticated = errors.New("connection refused: no valid agent secret")

func (c *secretConn) handshake() error {
	c.once.Do(func() {
		if err := agentapi.ServerHandshake(c.Conn, c.secret); err != nil {
			c.err = fmt.Errorf("%w (%w)", errUnauthenticated, err)
			_ = c.Close()
		}
	})
	return c.err
}

func (c *secretConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *secretConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
