package agent

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// handleTunnel connects the caller to 127.0.0.1:<port> inside the sandbox:
// after a 101 answer the socket carries raw TCP both ways. Dialing from
// inside reaches dev servers bound to the sandbox's localhost, and nothing
// is ever published on the host.
func (s *Server) handleTunnel(w http.ResponseWriter, r *http.Request) {
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		s.writeError(w, errf(agentapi.CodeInvalid, "invalid port %q", r.URL.Query().Get("port")))
		return
	}
	var upstream net.Conn
	for _, host := range []string{"127.0.0.1", "::1"} {
		upstream, err = net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
		if err == nil {
			break
		}
	}
	if err != nil {
		s.writeError(w, errf(agentapi.CodeNoPort, "nothing listening on port %d", port))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		s.writeError(w, errf(agentapi.CodeInternal, "connection cannot be hijacked"))
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + agentapi.TunnelProtocol + "\r\n\r\n")
	if err := rw.Flush(); err != nil {
		conn.Close()
		upstream.Close()
		return
	}
	splice(conn, rw.Reader, upstream)
}

// splice copies both ways until both directions end, half-closing so that a
// client's EOF reaches the server (and vice versa).
func splice(client net.Conn, clientR io.Reader, upstream net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(upstream, clientR)
		closeWrite(upstream)
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(client, upstream)
		closeWrite(client)
	}()
	wg.Wait()
	client.Close()
	upstream.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
