package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Touch records activity on a session's sandbox (API calls, preview traffic) at most once per
// second per sandbox and replica.
func (m *Manager) Touch(ctx context.Context, sessionID string) {
	now := time.Now()
	m.mu.Lock()
	last := m.touched[sessionID]
	if now.Sub(last) < time.Second {
		m.mu.Unlock()
		return
	}
	m.touched[sessionID] = now
	m.mu.Unlock()
	if err := m.st.Touch(ctx, sessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.WarnContext(ctx, "record activity", "session_id", sessionID, "err", err)
	}
}

// agent returns the client of a record's agent.
func (m *Manager) agent(r store.Record) *agentclient.Client {
	return m.fleet.Client(driver.Instance{ID: r.InstanceID, Name: r.InstanceName, Socket: r.Socket, Endpoint: r.Endpoint, PID: r.AgentPID})
}

// activity says whether a call through withAgent records activity itself (touch) or leaves it to
// fn (an exec, whose lease records it in the same round trip).
type activity bool

const (
	touch  activity = true
	leased activity = false
)

// withAgent runs fn against the session's agent, creating the sandbox when
// it has none, and re-creating it once when its instance turns out dead.
func (m *Manager) withAgent(ctx context.Context, userID, sessionID string, act activity, fn func(store.Record, *agentclient.Client) error) error {
	if userID == "" {
		return ErrNoUser
	}
	// Fast path, one round trip: owner and a running record.
	owner, rec, ok, err := m.st.OwnerAndRecord(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && owner != userID) {
		return fmt.Errorf("%w: session %s has no sandbox for this user", ErrNotFound, sessionID)
	}
	if err != nil {
		return err
	}
	running := ok && rec.State == store.StateRunning
	for attempt := 0; ; attempt++ {
		if !running {
			if rec, _, err = m.ensure(ctx, userID, sessionID); err != nil {
				return err
			}
		}
		running = false
		if act == touch {
			m.Touch(ctx, sessionID)
		}
		err = fn(rec, m.agent(rec))
		if err == nil || !errors.Is(err, agentclient.ErrUnavailable) || attempt > 0 || ctx.Err() != nil {
			return agentError(err)
		}
		// The agent is unreachable: if its instance is dead, drop the
		// record and try once more on a fresh sandbox.
		inst, ierr := m.fleet.Inspect(ctx, rec.InstanceID)
		if ierr == nil && inst.Running {
			return agentError(err)
		}
		m.log.WarnContext(ctx, "sandbox instance is gone; re-creating", "session_id", sessionID, "instance", rec.InstanceName)
		if _, derr := m.destroy(ctx, sessionID, time.Time{}, reasonGone); derr != nil {
			return derr
		}
	}
}
