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

// NewNetwork returns a client for an agent serving on a TCP address (a pod's IP and port): every
// connection it opens passes the secret handshake (agentapi.ClientHandshake) before its first request.
// A refused handshake is an error wrapping agentapi.ErrDenied.
func NewNetwork(addr string, secret SecretFunc) *Client {
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
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
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
