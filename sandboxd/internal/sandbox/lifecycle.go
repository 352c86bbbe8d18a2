package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// ensure returns the running record of the session, creating the sandbox
// if there is none (first launch, or re-creation after reaping).
func (m *Manager) ensure(ctx context.Context, userID, sessionID string) (store.Record, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.CreateTimeout+5*time.Second)
	defer cancel()
	backoff := 5 * time.Millisecond
	for {
		r, err := m.st.Get(ctx, sessionID)
		if err == nil && r.State == store.StateRunning {
			if r.OwnerID != userID {
				return store.Record{}, nil, fmt.Errorf("%w: session %s", ErrNotFound, sessionID)
			}
			return r, nil, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Record{}, nil, err
		}
		holder := m.holder()
		res, err := m.st.BeginCreate(ctx, sessionID, userID, holder, m.opts.CreateTimeout)
		if err != nil {
			return store.Record{}, nil, err
		}
		switch res {
		case store.CreateOwnedByOther:
			return store.Record{}, nil, fmt.Errorf("%w: session %s", ErrNotFound, sessionID)
		case store.CreateYours:
			return m.create(ctx, userID, sessionID, holder)
		case store.StateRunning:
			continue
		}
		// Another caller is creating or destroying it: wait for that.
		select {
		case <-ctx.Done():
			return store.Record{}, nil, fmt.Errorf("%w: waiting for the sandbox: %w", ErrUnavailable, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// create makes the instance for a record the caller holds in "creating".
func (m *Manager) create(ctx context.Context, userID, sessionID, holder string) (store.Record, []string, error) {
	begin := time.Now()
	inst, logs, err := m.provision(ctx, userID, sessionID)
	if err != nil {
		m.abandon(sessionID, userID, holder)
		return store.Record{}, nil, err
	}
	rec := store.Record{
		SessionID: sessionID, OwnerID: userID, InstanceID: inst.ID, InstanceName: inst.Name,
		Driver: m.fleet.DriverName(), State: store.StateRunning, Socket: inst.Socket, Endpoint: inst.Endpoint, AgentPID: inst.PID, Workspace: inst.Workspace,
		Created: begin, LastActive: time.Now(),
	}
	if err := m.st.FinishCreate(ctx, holder, rec); err != nil {
		// Destroyed (or taken over) while we created: what we made is ours
		// to remove; the workspace stays with the session.
		m.fleet.Remove(context.WithoutCancel(ctx), inst)
		if errors.Is(err, store.ErrNotHeld) {
			return store.Record{}, nil, fmt.Errorf("%w: sandbox was destroyed while being created", ErrUnavailable)
		}
		return store.Record{}, nil, err
	}
	logs = append(logs, fmt.Sprintf("sandbox ready in %d ms", time.Since(begin).Milliseconds()))
	m.log.InfoContext(ctx, "sandbox created", "session_id", sessionID, "instance", inst.Name,
		"driver", m.fleet.DriverName(), "workspace", inst.WorkspaceID, "duration_ms", time.Since(begin).Milliseconds())
	return rec, logs, nil
}

// abandon gives up a creating record after a failed creation.
func (m *Manager) abandon(sessionID, userID, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.st.Delete(ctx, store.Record{SessionID: sessionID, OwnerID: userID}, holder)
}

// Destroy destroys the session's sandbox. forget also drops the session's
// ownership (the session was deleted). stopped reports whether a sandbox
// existed.
func (m *Manager) Destroy(ctx context.Context, userID, sessionID string, forget bool) (bool, error) {
	if err := m.checkOwner(ctx, userID, sessionID); err != nil {
		if forget && errors.Is(err, ErrNotFound) {
			return false, nil // already forgotten: deleting a session is idempotent
		}
		return false, err
	}
	stopped, err := m.destroy(ctx, sessionID, time.Time{}, "requested")
	if err != nil {
		return false, err
	}
	if forget {
		// The workspace goes with the session, before the owner: a crash in between leaves an
		// owner without a workspace (a new one is made on its next call), never a workspace that
		// nothing names (reconciliation would remove it only after its grace).
		if err := m.forgetWorkspace(ctx, sessionID); err != nil {
			return stopped, err
		}
		if err := m.st.ForgetOwner(ctx, sessionID); err != nil {
			return stopped, err
		}
	}
	return stopped, nil
}

// DestroyAll destroys the user's sandboxes, or everyone's with all.
func (m *Manager) DestroyAll(ctx context.Context, userID string, all bool) ([]string, error) {
	sbs, err := m.List(ctx, userID, all)
	if err != nil {
		return nil, err
	}
	stopped := []string{}
	for _, sb := range sbs {
		ok, err := m.destroy(ctx, sb.SessionID, time.Time{}, "requested")
		if err != nil {
			return stopped, err
		}
		if ok {
			stopped = append(stopped, sb.SessionID)
		}
	}
	return stopped, nil
}

// IdleCandidates returns up to limit sessions whose sandbox has had no
// activity since cutoff, oldest first. A candidate may still be busy (a
// running exec) or be touched meanwhile: ReapIdle decides.
func (m *Manager) IdleCandidates(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	return m.st.IdleBefore(ctx, cutoff, int64(limit))
}

// ReapIdle destroys the session's sandbox if it has been idle since cutoff
// and runs no exec. It reports whether it destroyed it.
func (m *Manager) ReapIdle(ctx context.Context, sessionID string, cutoff time.Time) (bool, error) {
	return m.destroy(ctx, sessionID, cutoff, "idle")
}

// syncTimeout bounds the flush of a workspace before its instance is removed.
const syncTimeout = 5 * time.Second

// Destroy reasons of an instance found dead: there is no agent to flush.
const (
	reasonGone       = "instance gone"
	reasonMissing    = "instance missing"
	reasonNotRunning = "instance not running"
)

func deadReason(reason string) bool {
	return reason == reasonGone || reason == reasonMissing || reason == reasonNotRunning
}

// destroy claims the record (conditionally on idleness when cutoff is set),
// removes the instance and deletes the record. Whoever wins the claim does
// the work; everyone else sees false.
func (m *Manager) destroy(ctx context.Context, sessionID string, cutoff time.Time, reason string) (bool, error) {
	holder := m.holder()
	res, err := m.st.ClaimDestroy(ctx, sessionID, holder, m.opts.CreateTimeout, cutoff)
	if err != nil {
		return false, err
	}
	if res != store.Claimed {
		if res == store.ClaimGone && !cutoff.IsZero() {
			if _, err := m.st.Get(ctx, sessionID); errors.Is(err, store.ErrNotFound) {
				_ = m.st.Unindex(ctx, sessionID)
			}
		}
		return false, nil
	}
	rec, err := m.st.Get(ctx, sessionID)
	if err != nil {
		return false, err
	}
	name := rec.InstanceName
	if name == "" {
		name = ContainerName(sessionID)
	}
	if rec.InstanceID != "" && !deadReason(reason) {
		// The workspace outlives the instance: what its programs wrote goes to disk before the
		// instance is killed. Bounded: a hung agent does not hold up the destruction.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), syncTimeout)
		if err := m.agent(rec).Sync(sctx); err != nil {
			m.log.DebugContext(ctx, "flush workspace before removal", "session_id", sessionID, "err", err)
		}
		cancel()
	}
	m.fleet.Remove(context.WithoutCancel(ctx), driver.Instance{ID: rec.InstanceID, Name: name, Socket: rec.Socket, Endpoint: rec.Endpoint})
	if err := m.st.Delete(context.WithoutCancel(ctx), rec, holder); err != nil {
		return false, err
	}
	m.mu.Lock()
	delete(m.touched, sessionID)
	m.mu.Unlock()
	m.log.InfoContext(ctx, "sandbox destroyed", "session_id", sessionID, "instance", name,
		"reason", reason, "idle_for", time.Since(rec.LastActive).Round(time.Second).String())
	return true, nil
}
