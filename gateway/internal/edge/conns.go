package edge

import (
	"container/list"
	"context"
	"net"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// anonymousEvicted counts connections closed to make room under the anonymous-connection cap.
var anonymousEvicted, _ = otel.Meter("github.com/mgx-ai/mgx/gateway/edge").Int64Counter(
	"mgx_gateway_anonymous_connections_evicted", metric.WithDescription(
		"connections that had presented no valid credential, closed to admit newer ones under GATEWAY_MAX_ANONYMOUS_CONNS"))

// Conns caps the connections that have not yet presented a valid credential.
//
// Every connection starts anonymous. The first request on it that authenticates (an access token or
// an API key the edge accepts) makes it a user's connection, and those are never counted nor closed
// here: however many idle or trickling anonymous connections a client opens, a signed-in user's
// connection keeps working. When a new connection would take the anonymous ones over the cap, the
// oldest anonymous connection is closed instead of refusing the new one, because a new connection
// has sent nothing yet and may well be a user's: refusing it would let a flood of anonymous
// connections lock users out, closing the oldest only makes the flood compete with itself.
//
// Preview traffic is authorised by sandboxd, not here, so its connections stay anonymous until they
// upgrade to a WebSocket (hijacked connections leave the HTTP server and this count).
type Conns struct {
	max int

	mu   sync.Mutex
	anon *list.List                 // anonymous connections, oldest first
	byID map[net.Conn]*list.Element // every anonymous connection's place in anon
}

// NewConns returns a cap of max anonymous connections; max <= 0 means no cap.
func NewConns(max int) *Conns {
	return &Conns{max: max, anon: list.New(), byID: map[net.Conn]*list.Element{}}
}

type connKey struct{}

// ConnContext is the http.Server's ConnContext: it lets a request find its connection.
func (c *Conns) ConnContext(ctx context.Context, conn net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, conn)
}

// ConnState is the http.Server's ConnState hook.
func (c *Conns) ConnState(conn net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		c.admit(conn)
	case http.StateHijacked, http.StateClosed:
		c.forget(conn)
	}
}

func (c *Conns) admit(conn net.Conn) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	c.byID[conn] = c.anon.PushBack(conn)
	var evict []net.Conn
	for c.anon.Len() > c.max {
		oldest := c.anon.Remove(c.anon.Front()).(net.Conn)
		delete(c.byID, oldest)
		evict = append(evict, oldest)
	}
	c.mu.Unlock()
	for _, old := range evict {
		// net/http sees the close as a read error and ends the connection's goroutine.
		_ = old.Close()
		anonymousEvicted.Add(context.Background(), 1)
	}
}

func (c *Conns) forget(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[conn]; ok {
		c.anon.Remove(e)
		delete(c.byID, conn)
	}
}

// Authenticated marks the connection of a request whose credential the edge accepted.
func (c *Conns) Authenticated(ctx context.Context) {
	if conn, ok := ctx.Value(connKey{}).(net.Conn); ok {
		c.forget(conn)
	}
}

// Anonymous is the number of anonymous connections open.
func (c *Conns) Anonymous() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.anon.Len()
}
