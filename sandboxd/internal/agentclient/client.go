// Package agentclient calls a sandbox-agent over its unix socket.
package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// Error is a failure the agent reported, with its agentapi code.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("agent: %s: %s", e.Code, e.Msg) }

// ErrUnavailable wraps failures to reach the agent at all (socket missing,
// connection refused): the sandbox is gone or not started yet.
var ErrUnavailable = errors.New("sandbox agent unavailable")

// Client talks to one agent. It keeps connections alive, so a call costs one
// round trip on an open unix socket.
type Client struct {
	socket string
	pid    int
	http   *http.Client
	// connect replaces the unix socket for an agent on the network (network.go).
	connect func(ctx context.Context) (net.Conn, error)
}

// maxResponse bounds a JSON response read from an agent.
const maxResponse = 256 << 20

// ErrWrongPeer means the socket is not served by the sandbox's agent.
var ErrWrongPeer = errors.New("agent socket is served by another process")

// New returns a client for the agent serving on socket. pid, when known, is
// the agent's host pid: every connection is checked against it before a
// byte is sent. The socket's directory is writable from inside the sandbox,
// so sandbox code could replace the socket with a symlink to a host socket
// (the Docker daemon's, say); the peer check makes sandboxd refuse to talk
// to anything but the agent it started.
func New(socket string, pid int) *Client {
	return newClient(&Client{socket: socket, pid: pid})
}

func newClient(c *Client) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dial(ctx)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	c.http = &http.Client{Transport: tr}
	return c
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if c.connect != nil {
		return c.connect(ctx)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	if err := checkPeer(conn, c.pid); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// checkPeer compares the connected peer's pid (SO_PEERCRED) with want. A
// peer pid of 0 means the peer lives in a pid namespace we cannot see (a
// containerised sandboxd); nothing can be checked then.
func checkPeer(conn net.Conn, want int) error {
	if want <= 0 {
		return nil
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return credErr
	}
	if cred.Pid != 0 && int(cred.Pid) != want {
		return fmt.Errorf("%w (pid %d, want %d)", ErrWrongPeer, cred.Pid, want)
	}
	return nil
}

// Socket is the path of the agent's socket.
func (c *Client) Socket() string { return c.socket }

// Close drops idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	// Bounded: outputs and file reads are capped well below this by the
	// agent; a response past it is not the agent's.
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return fmt.Errorf("agent %s %s: decode: %w", method, path, err)
	}
	return nil
}

// send performs a request and returns a 2xx response, or the agent's error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := "http://agent" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var ae agentapi.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &ae) != nil || ae.Code == "" {
			ae = agentapi.Error{Code: agentapi.CodeInternal, Message: string(b)}
		}
		return nil, &Error{Status: resp.StatusCode, Code: ae.Code, Msg: ae.Message}
	}
	return resp, nil
}

// Health checks that the agent answers.
func (c *Client) Health(ctx context.Context) (agentapi.Health, error) {
	var h agentapi.Health
	err := c.do(ctx, http.MethodGet, agentapi.PathHealth, nil, nil, &h)
	return h, err
}

// coalesceLimit bounds a coalesced output chunk.
const coalesceLimit = 1 << 20

// Exec runs a command and calls emit with each chunk of output as it arrives,
// then returns how it ended. It is the one way to run a command: a caller
// that wants the output whole passes an Output's Write.
func (c *Client) Exec(ctx context.Context, req agentapi.ExecRequest, emit func(stderr bool, p []byte) error) (agentapi.ExecExit, error) {
	resp, err := c.send(ctx, http.MethodPost, agentapi.PathExec, nil, req)
	if err != nil {
		return agentapi.ExecExit{}, err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 256<<10)
	for {
		kind, payload, err := agentapi.ReadFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return agentapi.ExecExit{}, ctx.Err()
			}
			return agentapi.ExecExit{}, fmt.Errorf("%w: exec stream ended early: %w", ErrUnavailable, err)
		}
		switch kind {
		case agentapi.FrameExit:
			var res agentapi.ExecExit
			if err := json.Unmarshal(payload, &res); err != nil {
				return agentapi.ExecExit{}, fmt.Errorf("exec stream: bad exit frame: %w", err)
			}
			return res, nil
		case agentapi.FrameStdout, agentapi.FrameStderr:
			// Coalesce frames that already arrived: fewer, larger messages
			// downstream, at no latency cost (nothing waits for more).
			for len(payload) < coalesceLimit && br.Buffered() >= 5 {
				next, err := br.Peek(5)
				if err != nil || next[0] != kind || br.Buffered() < 5+int(binary.BigEndian.Uint32(next[1:])) {
					break
				}
				_, more, err := agentapi.ReadFrame(br)
				if err != nil {
					break
				}
				payload = append(payload, more...)
			}
			if err := emit(kind == agentapi.FrameStderr, payload); err != nil {
				return agentapi.ExecExit{}, err
			}
		}
	}
}

// Output collects an exec's output, at most Limit bytes of each stream (a
// Limit of 0 keeps everything); what is cut sets Truncated. Its Write is an
// Exec's emit.
type Output struct {
	Limit          int
	Stdout, Stderr []byte
	Truncated      bool
}

// Write keeps p within the cap. It never fails: output past the cap is read
// and dropped, so the command is never blocked or killed by a full pipe.
func (o *Output) Write(stderr bool, p []byte) error {
	buf := &o.Stdout
	if stderr {
		buf = &o.Stderr
	}
	if o.Limit > 0 {
		room := o.Limit - len(*buf)
		if len(p) > room {
			p, o.Truncated = p[:max(room, 0)], true
		}
	}
	*buf = append(*buf, p...)
	return nil
}

// StartProcess starts a named background process.
func (c *Client) StartProcess(ctx context.Context, req agentapi.StartProcessRequest) (agentapi.Process, error) {
	var p agentapi.Process
	err := c.do(ctx, http.MethodPost, agentapi.PathProcesses, nil, req, &p)
	return p, err
}

// ListProcesses lists the background processes.
func (c *Client) ListProcesses(ctx context.Context) ([]agentapi.Process, error) {
	var ps []agentapi.Process
	err := c.do(ctx, http.MethodGet, agentapi.PathProcesses, nil, nil, &ps)
	return ps, err
}

// SignalProcess signals a process's group.
func (c *Client) SignalProcess(ctx context.Context, name, signal string) (agentapi.Process, error) {
	var p agentapi.Process
	err := c.do(ctx, http.MethodPost, agentapi.PathProcesses+"/"+url.PathEscape(name)+"/signal", nil, agentapi.SignalRequest{Signal: signal}, &p)
	return p, err
}

// ProcessLogs opens a process's log from offset, or with tail > 0 (and
// offset 0) that many bytes before its end; it returns the offset the body
// starts at. The caller reads and closes it. With follow the stream lasts
// until the process exits or ctx ends.
func (c *Client) ProcessLogs(ctx context.Context, name string, offset, tail int64, follow bool) (io.ReadCloser, int64, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	if tail > 0 {
		q.Set("tail", strconv.FormatInt(tail, 10))
	}
	resp, err := c.send(ctx, http.MethodGet, agentapi.PathProcesses+"/"+url.PathEscape(name)+"/logs", q, nil)
	if err != nil {
		return nil, 0, err
	}
	start := offset
	if h := resp.Header.Get(agentapi.HeaderLogOffset); h != "" {
		if v, err := strconv.ParseInt(h, 10, 64); err == nil {
			start = v
		}
	}
	return resp.Body, start, nil
}

// Ports lists listening TCP ports.
func (c *Client) Ports(ctx context.Context) ([]agentapi.Port, error) {
	var ps []agentapi.Port
	err := c.do(ctx, http.MethodGet, agentapi.PathPorts, nil, nil, &ps)
	return ps, err
}

// Tree lists the workspace; directories named in prune are listed but not
// descended.
func (c *Client) Tree(ctx context.Context, root string, depth int, hidden bool, prune ...string) (agentapi.Tree, error) {
	q := url.Values{"root": {root}, "depth": {strconv.Itoa(depth)}}
	if hidden {
		q.Set("include_hidden", "1")
	}
	if len(prune) > 0 {
		q["prune"] = prune
	}
	var t agentapi.Tree
	err := c.do(ctx, http.MethodGet, agentapi.PathTree, q, nil, &t)
	return t, err
}

// ReadFile reads one file.
func (c *Client) ReadFile(ctx context.Context, path string) (agentapi.File, error) {
	var f agentapi.File
	err := c.do(ctx, http.MethodGet, agentapi.PathFile, url.Values{"path": {path}}, nil, &f)
	return f, err
}

// WriteFile writes one file.
func (c *Client) WriteFile(ctx context.Context, req agentapi.WriteFileRequest) (agentapi.WriteFileResult, error) {
	var r agentapi.WriteFileResult
	err := c.do(ctx, http.MethodPut, agentapi.PathFile, nil, req, &r)
	return r, err
}

// DeleteFile deletes a file or directory tree.
func (c *Client) DeleteFile(ctx context.Context, path string) (agentapi.DeleteFileResult, error) {
	var r agentapi.DeleteFileResult
	err := c.do(ctx, http.MethodDelete, agentapi.PathFile, url.Values{"path": {path}}, nil, &r)
	return r, err
}

// DialTunnel opens a raw TCP connection to 127.0.0.1:port inside the
// sandbox through the agent.
func (c *Client) DialTunnel(ctx context.Context, port int) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := "GET " + agentapi.PathTunnel + "?port=" + strconv.Itoa(port) + " HTTP/1.1\r\nHost: agent\r\n" +
		"Connection: Upgrade\r\nUpgrade: " + agentapi.TunnelProtocol + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close() // empty for a 101; the connection itself carries the tunnel
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		var ae agentapi.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ae)
		return nil, &Error{Status: resp.StatusCode, Code: ae.Code, Msg: ae.Message}
	}
	_ = conn.SetDeadline(time.Time{})
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads through the reader that parsed the 101 answer, which
// may already hold the first upstream bytes.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes, so an HTTP proxy can signal EOF upstream.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
