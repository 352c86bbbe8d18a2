// Package agentapi is the wire contract between sandboxd and the
// sandbox-agent: HTTP/1.1 with JSON bodies over a unix socket that the agent
// creates in a directory bind-mounted from the host.
//
// HTTP over a unix socket instead of gRPC keeps the agent a small static
// binary with no generated code, costs well under a millisecond per call with
// keep-alive, and gives the preview tunnel a standard upgrade handshake
// (Connection: Upgrade, then raw bytes both ways) that an
// httputil.ReverseProxy transport can dial directly.
package agentapi

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Paths served by the agent.
const (
	PathHealth    = "/v1/health"
	PathExec      = "/v1/exec"
	PathProcesses = "/v1/processes" // + "/{name}", "/{name}/logs", "/{name}/signal"
	PathPorts     = "/v1/ports"
	PathTree      = "/v1/files/tree"
	PathFile      = "/v1/files"
	PathTunnel    = "/v1/tunnel"
)

// TunnelProtocol is the Upgrade token of the TCP tunnel.
const TunnelProtocol = "mgx-tcp"

// Error codes the agent returns in Error.Code; sandboxd maps each to a domain
// sentinel.
const (
	CodeInvalid   = "invalid"   // malformed request, or a path no file operation can use (too long, a symlink loop, a FIFO, socket or device)
	CodeEscape    = "escape"    // a path resolves outside the workspace
	CodeNotFound  = "not_found" // file or process does not exist
	CodeExists    = "exists"    // a process with that name is running
	CodeIsDir     = "is_dir"    // a file operation on a directory
	CodeTooLarge  = "too_large" // file larger than the read limit
	CodeNoPort    = "no_port"   // tunnel target refused the connection
	CodeInternal  = "internal"  // anything else
	CodeUnhealthy = "unhealthy" // agent cannot serve
	// CodeDenied: the sandbox's file system refuses the operation (permissions, a read-only file system), or
	// the agent does: a hard link shared with a file outside the sandbox.
	CodeDenied = "denied"
	// CodeFailed: the file is in a state that prevents the operation (a running executable, a full disk).
	CodeFailed = "failed_precondition"
	// CodeNoCheckpoint: no such checkpoint in the workspace's history.
	CodeNoCheckpoint = "no_checkpoint"
)

// Error is the body of every non-2xx response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Health is the body of GET /v1/health.
type Health struct {
	PID         int    `json:"pid"`
	Shell       string `json:"shell"`
	User        string `json:"user"`
	Workspace   string `json:"workspace"`
	ActiveExecs int    `json:"active_execs"`
}

// ExecRequest is the body of POST /v1/exec. The answer is always a stream of frames (WriteFrame):
// output as it arrives, then one FrameExit. A caller that wants the output whole collects the
// frames itself, up to its own cap; the agent never buffers a command's output.
type ExecRequest struct {
	Command string            `json:"command"`
	Cwd     string            `json:"cwd"` // relative to the workspace, already cleaned
	Env     map[string]string `json:"env,omitempty"`
	// Timeout bounds the command and is required: the default and the cap are sandboxd's
	// configuration, never the agent's. On expiry the whole process group is killed and the exit
	// frame has TimedOut set.
	Timeout time.Duration `json:"timeout"`
}

// ExecExit is the payload of a stream's last frame (FrameExit), as JSON.
type ExecExit struct {
	ExitCode   int     `json:"exit_code"`
	TimedOut   bool    `json:"timed_out"`
	DurationMS float64 `json:"duration_ms"`
}

// StartProcessRequest is the body of POST /v1/processes.
type StartProcessRequest struct {
	Name    string            `json:"name"`
	Command string            `json:"command"`
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env,omitempty"`
}

// Process describes a named background process.
type Process struct {
	Name      string     `json:"name"`
	Command   string     `json:"command"`
	Cwd       string     `json:"cwd"`
	PID       int        `json:"pid"`
	State     string     `json:"state"` // "running" or "exited"
	ExitCode  int        `json:"exit_code"`
	StartedAt time.Time  `json:"started_at"`
	ExitedAt  *time.Time `json:"exited_at,omitempty"`
	// Ports are the TCP ports the process's group listens on (listings only).
	Ports []int `json:"ports,omitempty"`
}

// Process states.
const (
	StateRunning = "running"
	StateExited  = "exited"
)

// SignalRequest is the body of POST /v1/processes/{name}/signal.
type SignalRequest struct {
	Signal string `json:"signal"` // TERM, KILL, INT, HUP, USR1, USR2
}

// Port is one listening TCP port.
type Port struct {
	Port    int    `json:"port"`
	Address string `json:"address"`
}

// TreeEntry is one node of GET /v1/files/tree.
type TreeEntry struct {
	Name     string      `json:"name"`
	Path     string      `json:"path"`
	Type     string      `json:"type"` // "file" or "directory"
	Size     int64       `json:"size"`
	Children []TreeEntry `json:"children,omitempty"`
}

// Tree is the body of GET /v1/files/tree.
type Tree struct {
	Root      string      `json:"root"`
	Entries   []TreeEntry `json:"entries"`
	Truncated bool        `json:"truncated"`
}

// File is the body of GET /v1/files.
type File struct {
	Name       string    `json:"name"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	ModifiedAt time.Time `json:"modified_at"`
	Content    []byte    `json:"content"`
}

// WriteFileRequest is the body of PUT /v1/files.
type WriteFileRequest struct {
	Path    string `json:"path"`
	Content []byte `json:"content"`
	Append  bool   `json:"append"`
}

// WriteFileResult is the answer to PUT /v1/files.
type WriteFileResult struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// DeleteFileResult is the answer to DELETE /v1/files.
type DeleteFileResult struct {
	Path    string `json:"path"`
	Deleted bool   `json:"deleted"`
}

// An exec's response body is a sequence of binary frames: one kind byte, a
// 4-byte big-endian length, the payload. Output travels as raw bytes (no
// JSON, no base64), so streaming costs little more than the pipe; the last
// frame is FrameExit with a JSON ExecExit.
const (
	FrameStdout byte = 'o'
	FrameStderr byte = 'e'
	FrameExit   byte = 'x'
)

// maxFrame bounds a frame a reader accepts.
const maxFrame = 16 << 20

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d", n, maxFrame)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}
