package agentclient

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// SecretFunc returns an agent's per-sandbox secret (the Kubernetes driver reads it from the sandbox's
// Secret). It is called when the first connection opens and its answer kept.
type SecretFunc func(ctx context.Context) ([]byte, error)

// DialFunc opens a connection to an agent (nil: a TCP connection to its address).
type DialFunc func(ctx context.Context) (net.Conn, error)

// NewNetwork returns a client for an agent serving on a TCP address (a pod's IP and port), reached by
// dial: every connection it opens passes the secret handshake (agentapi.ClientHandshake) before its
// first request. A refused handshake is an error wrapping agentapi.ErrDenied.
func NewNetwork(addr string, dial DialFunc, secret SecretFunc) *Client {
	if dial == nil {
		dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	var (
		mu     sync.Mutex
		cached []byte
	)
	load := func(ctx context.Context) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if cached == nil {
			s, err := secret(ctx)
			if err != nil {
				return nil, err
			}
			cached = s
		}
		return cached, nil
	}
	return newClient(&Client{socket: "tcp://" + addr, connect: func(ctx context.Context) (net.Conn, error) {
		s, err := load(ctx)
		if err != nil {
			return nil, fmt.Errorf("agent secret: %w", err)
		}
		conn, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		if err := agentapi.ClientHandshake(ctx, conn, s); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}})
}
