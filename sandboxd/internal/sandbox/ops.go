package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

func cleanPath(p string) (string, error) {
	rel, err := workspace.Clean(p)
	if err != nil {
		return "", fmt.Errorf("%w: path %q: %w", ErrInvalidArgument, p, err)
	}
	return rel, nil
}

// Tree lists the workspace from root, depth levels deep; directories named in prune are listed but
// not descended.
func (m *Manager) Tree(ctx context.Context, userID, sessionID, root string, depth int, hidden bool, prune []string) (Tree, error) {
	rel, err := cleanPath(root)
	if err != nil {
		return Tree{}, err
	}
	if depth == 0 {
		depth = 2
	}
	if depth < 1 || depth > 10 {
		return Tree{}, fmt.Errorf("%w: depth must be 1..10", ErrInvalidArgument)
	}
	var t Tree
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		t, err = c.Tree(ctx, rel, depth, hidden, prune...)
		return err
	})
	return t, err
}

// ReadFile reads a file of the workspace.
func (m *Manager) ReadFile(ctx context.Context, userID, sessionID, path string) (File, error) {
	rel, err := cleanPath(path)
	if err != nil {
		return File{}, err
	}
	var f File
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		f, err = c.ReadFile(ctx, rel)
		return err
	})
	return f, err
}

// WriteFile writes (or appends to) a file, creating parent directories.
func (m *Manager) WriteFile(ctx context.Context, userID, sessionID, path string, content []byte, appendTo bool) (WriteResult, error) {
	rel, err := cleanPath(path)
	if err != nil {
		return WriteResult{}, err
	}
	var r WriteResult
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		r, err = c.WriteFile(ctx, agentapi.WriteFileRequest{Path: rel, Content: content, Append: appendTo})
		return err
	})
	return r, err
}

// DeleteFile deletes a file or directory tree.
func (m *Manager) DeleteFile(ctx context.Context, userID, sessionID, path string) (DeleteResult, error) {
	rel, err := cleanPath(path)
	if err != nil {
		return DeleteResult{}, err
	}
	var r DeleteResult
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		r, err = c.DeleteFile(ctx, rel)
		return err
	})
	return r, err
}

// ProcessSpec is a named background process.
type ProcessSpec struct {
	Name    string
	Command string
	Cwd     string
	Env     map[string]string
}

// StartProcess starts a named background process.
func (m *Manager) StartProcess(ctx context.Context, userID, sessionID string, spec ProcessSpec) (Process, error) {
	cwd, err := workspace.Clean(spec.Cwd)
	if err != nil {
		return Process{}, fmt.Errorf("%w: cwd %q: %w", ErrInvalidArgument, spec.Cwd, err)
	}
	if err := checkEnv(spec.Env); err != nil {
		return Process{}, err
	}
	var p Process
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		p, err = c.StartProcess(ctx, agentapi.StartProcessRequest{Name: spec.Name, Command: spec.Command, Cwd: cwd, Env: spec.Env})
		return err
	})
	return p, err
}

// ListProcesses lists the sandbox's background processes.
func (m *Manager) ListProcesses(ctx context.Context, userID, sessionID string) ([]Process, error) {
	var ps []Process
	err := m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		ps, err = c.ListProcesses(ctx)
		return err
	})
	return ps, err
}

// LiveProcesses lists the background processes of the session's sandbox if it is running, without
// creating it and without counting as activity: quota accounting must neither start sandboxes nor
// keep them from being reaped. A sandbox that is not running has none.
func (m *Manager) LiveProcesses(ctx context.Context, sessionID string) ([]agentapi.Process, error) {
	r, err := m.st.Get(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.State != store.StateRunning) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return m.agent(r).ListProcesses(ctx)
}

// SignalProcess signals a process's group.
func (m *Manager) SignalProcess(ctx context.Context, userID, sessionID, name, signal string) (Process, error) {
	var p Process
	err := m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		p, err = c.SignalProcess(ctx, name, signal)
		return err
	})
	return p, err
}

// ProcessLogs opens a process's log from offset, or tail bytes before its end, and returns the
// offset it starts at; the caller closes it.
func (m *Manager) ProcessLogs(ctx context.Context, userID, sessionID, name string, offset, tail int64, follow bool) (io.ReadCloser, int64, error) {
	var (
		rc    io.ReadCloser
		start int64
	)
	err := m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		rc, start, err = c.ProcessLogs(ctx, name, offset, tail, follow)
		return err
	})
	return rc, start, err
}

// Ports lists the TCP ports listening inside the sandbox.
func (m *Manager) Ports(ctx context.Context, userID, sessionID string) ([]Port, error) {
	var ps []Port
	err := m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		ps, err = c.Ports(ctx)
		return err
	})
	return ps, err
}

// RunningPorts lists the ports of a running sandbox without creating one:
// previews of a reaped sandbox are simply unavailable.
func (m *Manager) RunningPorts(ctx context.Context, userID, sessionID string) ([]Port, bool, error) {
	if err := m.checkOwner(ctx, userID, sessionID); err != nil {
		return nil, false, err
	}
	rec, err := m.st.Get(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if rec.State != store.StateRunning {
		return nil, false, nil
	}
	m.Touch(ctx, sessionID)
	ps, err := m.agent(rec).Ports(ctx)
	if err != nil {
		// A sandbox whose agent does not answer (dying, being reaped) has
		// no previews; that is an answer, not a failure.
		m.log.DebugContext(ctx, "list ports for preview", "session_id", sessionID, "err", err)
		return nil, false, nil //nolint:nilerr // see above
	}
	return ps, true, nil
}

// DialPort opens a TCP connection to port inside the session's running
// sandbox (preview traffic, already authorised by the preview token).
func (m *Manager) DialPort(ctx context.Context, sessionID string, port int) (net.Conn, error) {
	rec, err := m.st.Get(ctx, sessionID)
	if err != nil || rec.State != store.StateRunning {
		return nil, fmt.Errorf("%w: session %s has no running sandbox", ErrNotFound, sessionID)
	}
	m.Touch(ctx, sessionID)
	conn, err := m.agent(rec).DialTunnel(ctx, port)
	if err != nil {
		return nil, agentError(err)
	}
	return conn, nil
}
