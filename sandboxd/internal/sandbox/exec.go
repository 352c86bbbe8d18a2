package sandbox

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// ExecSpec is one command.
type ExecSpec struct {
	Command string
	Cwd     string
	Env     map[string]string
	// Timeout bounds the command; 0 means the configured default, and anything above the
	// configured maximum is lowered to it.
	Timeout time.Duration
}

// ExecResult is how a command ended, with its output when it was collected (Exec) rather than
// streamed (ExecStream).
type ExecResult struct {
	ExitCode       int
	Stdout, Stderr []byte
	// Truncated: output beyond the configured cap was dropped.
	Truncated  bool
	DurationMS float64
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkEnv(env map[string]string) error {
	for k := range env {
		if !envName.MatchString(k) {
			return fmt.Errorf("%w: environment variable name %q", ErrInvalidArgument, k)
		}
	}
	return nil
}

// execRequest validates spec and applies the timeout policy: this is the one place that decides a
// command's timeout.
func (m *Manager) execRequest(spec ExecSpec) (agentapi.ExecRequest, error) {
	cwd, err := workspace.Clean(spec.Cwd)
	if err != nil {
		return agentapi.ExecRequest{}, fmt.Errorf("%w: cwd %q: %w", ErrInvalidArgument, spec.Cwd, err)
	}
	if err := checkEnv(spec.Env); err != nil {
		return agentapi.ExecRequest{}, err
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = m.opts.ExecTimeout
	}
	timeout = min(timeout, m.opts.MaxExecTimeout)
	return agentapi.ExecRequest{Command: spec.Command, Cwd: cwd, Env: spec.Env, Timeout: timeout}, nil
}

// Exec runs a command to completion and collects its output, each stream up to the configured cap.
// A timeout kills the command's process group and returns ErrExecTimeout.
func (m *Manager) Exec(ctx context.Context, userID, sessionID string, spec ExecSpec) (ExecResult, error) {
	out := agentclient.Output{Limit: m.opts.OutputLimit}
	res, err := m.runExec(ctx, userID, sessionID, spec, out.Write)
	res.Stdout, res.Stderr, res.Truncated = out.Stdout, out.Stderr, out.Truncated
	return res, err
}

// ExecStream runs a command, calling emit with output as it arrives; nothing is capped.
func (m *Manager) ExecStream(ctx context.Context, userID, sessionID string, spec ExecSpec, emit func(stderr bool, p []byte) error) (ExecResult, error) {
	return m.runExec(ctx, userID, sessionID, spec, emit)
}

// runExec is the one exec path: the agent streams, emit decides what is kept.
func (m *Manager) runExec(ctx context.Context, userID, sessionID string, spec ExecSpec, emit func(stderr bool, p []byte) error) (ExecResult, error) {
	req, err := m.execRequest(spec)
	if err != nil {
		return ExecResult{}, err
	}
	execID := randomID()
	heartbeat := max(min(m.opts.IdleTimeout/4, 30*time.Second), 100*time.Millisecond)
	lease := 3 * heartbeat
	var exit agentapi.ExecExit
	// The exec's lease records the activity (BeginExec, EndExec), so no separate touch: three
	// Redis round trips per exec.
	err = m.withAgent(ctx, userID, sessionID, leased, func(_ store.Record, c *agentclient.Client) error {
		// The lease keeps the reaper off this sandbox while the command
		// runs; it lapses by itself if this process dies.
		if err := m.st.BeginExec(ctx, sessionID, execID, lease); err != nil {
			if errors.Is(err, store.ErrNotHeld) {
				return fmt.Errorf("%w: sandbox is being destroyed", ErrUnavailable)
			}
			return err
		}
		hbCtx, stopHB := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(heartbeat)
			defer t.Stop()
			for {
				select {
				case <-hbCtx.Done():
					return
				case <-t.C:
					_ = m.st.ExtendExec(hbCtx, sessionID, execID, lease)
					_ = m.st.Touch(hbCtx, sessionID)
				}
			}
		}()
		defer func() {
			stopHB()
			wg.Wait()
			_ = m.st.EndExec(context.WithoutCancel(ctx), sessionID, execID)
		}()
		exit, err = c.Exec(ctx, req, emit)
		return err
	})
	res := ExecResult{ExitCode: exit.ExitCode, DurationMS: exit.DurationMS}
	if err != nil {
		return res, err
	}
	if exit.TimedOut {
		return res, fmt.Errorf("%w after %s", ErrExecTimeout, req.Timeout)
	}
	return res, nil
}
