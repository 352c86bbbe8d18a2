package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// A session's workspace is two volumes (instance.VolumeNames) bound to the session in Redis and
// marked inside (the meta volume's marker names the workspace and the session). It outlives every
// sandbox of the session: reaping, a dead container, a restart of sandboxd only remove instances.
// Forgetting the session removes it.
//
// A workspace that is bound and marked (ready) is mounted again only after both checks pass: its
// volumes exist with its labels, and its marker names it and the session. A volume that is gone is
// "missing", one that is there but not the session's is "foreign"; either is reported to the caller
// (WorkspaceLostError) and never replaced by an empty one. ResetWorkspace is the owner's explicit
// way on.

// provision makes an instance for the session on its workspace: a warm one on a fresh workspace
// for a session that has none yet, else a new instance on the workspace it has.
func (m *Manager) provision(ctx context.Context, userID, sessionID string) (driver.Instance, []string, error) {
	ws, bound, err := m.st.Workspace(ctx, sessionID)
	if err != nil {
		return driver.Instance{}, nil, err
	}
	if !bound {
		inst, claimed, cerr := m.claimWarm(ctx, userID, sessionID)
		if cerr != nil {
			return driver.Instance{}, nil, cerr
		}
		if claimed {
			return inst, []string{fmt.Sprintf("claimed warm sandbox %s", inst.Name)}, nil
		}
		if ws, err = m.st.BindWorkspace(ctx, sessionID, randomID()); err != nil {
			return driver.Instance{}, nil, err
		}
	}
	switch ws.State {
	case store.WorkspacePending:
		inst, err := m.createOnNew(ctx, userID, sessionID, ws)
		if err != nil {
			return driver.Instance{}, nil, err
		}
		return inst, []string{fmt.Sprintf("created %s sandbox %s on a new workspace", m.fleet.DriverName(), inst.Name)}, nil
	case store.WorkspaceReady:
		inst, err := m.resume(ctx, userID, sessionID, ws)
		if err != nil {
			return driver.Instance{}, nil, err
		}
		return inst, []string{fmt.Sprintf("created %s sandbox %s on the session's workspace", m.fleet.DriverName(), inst.Name)}, nil
	default:
		return driver.Instance{}, nil, lostError(ws.SessionID, ws.State, "")
	}
}

// claimWarm takes a warm sandbox and binds its fresh workspace to the session. claimed is false
// when no warm sandbox could be used; the session may then have a pending binding to build on.
func (m *Manager) claimWarm(ctx context.Context, userID, sessionID string) (driver.Instance, bool, error) {
	for i := 0; m.pool != nil && i < 3; i++ {
		inst, ok := m.pool.Claim(ctx, userID, sessionID)
		if !ok {
			return driver.Instance{}, false, nil
		}
		if inst.WorkspaceID == "" || m.fleet.Ping(ctx, inst) != nil {
			m.discardWarm(ctx, inst)
			continue
		}
		ws, err := m.st.BindWorkspace(ctx, sessionID, inst.WorkspaceID)
		if err != nil || ws.ID != inst.WorkspaceID {
			m.discardWarm(ctx, inst)
			return driver.Instance{}, false, err
		}
		if err := m.mark(ctx, inst, ws, userID); err != nil {
			// The binding stays pending on the warm workspace's volumes, which hold nothing yet: the
			// caller builds an instance of its own on them.
			m.fleet.Remove(context.WithoutCancel(ctx), inst)
			m.log.WarnContext(ctx, "warm sandbox could not be marked; creating one", "instance", inst.Name, "err", err)
			return driver.Instance{}, false, nil
		}
		return inst, true, nil
	}
	return driver.Instance{}, false, nil
}

// discardWarm removes a claimed warm sandbox that will not be used, with its unused workspace.
func (m *Manager) discardWarm(ctx context.Context, inst driver.Instance) {
	ctx = context.WithoutCancel(ctx)
	m.fleet.Remove(ctx, inst)
	if inst.WorkspaceID != "" {
		if err := m.fleet.RemoveWorkspace(ctx, inst.WorkspaceID); err != nil {
			m.log.WarnContext(ctx, "remove unused warm workspace", "workspace", inst.WorkspaceID, "err", err)
		}
	}
}

// createOnNew creates the volumes of a pending workspace that do not exist yet and an instance on
// them, and marks the workspace as the session's.
func (m *Manager) createOnNew(ctx context.Context, userID, sessionID string, ws store.Workspace) (driver.Instance, error) {
	if _, err := m.fleet.CreateWorkspace(ctx, ws.ID, map[string]string{driver.LabelSession: sessionID, driver.LabelOwner: userID}); err != nil {
		if errors.Is(err, instance.ErrForeignVolume) {
			return driver.Instance{}, m.lose(ctx, ws, store.WorkspaceForeign, err)
		}
		return driver.Instance{}, unavailable(err)
	}
	inst, err := m.fleet.Create(ctx, m.spec(userID, sessionID, ws.ID, true))
	if err != nil {
		return driver.Instance{}, unavailable(err)
	}
	if err := m.mark(ctx, inst, ws, userID); err != nil {
		m.fleet.Remove(context.WithoutCancel(ctx), inst)
		var ae *agentclient.Error
		if errors.As(err, &ae) && ae.Code == agentapi.CodeExists {
			return driver.Instance{}, m.lose(ctx, ws, store.WorkspaceForeign, err)
		}
		return driver.Instance{}, unavailable(err)
	}
	return inst, nil
}

// resume creates an instance on a ready workspace after checking that it is the session's.
func (m *Manager) resume(ctx context.Context, userID, sessionID string, ws store.Workspace) (driver.Instance, error) {
	if err := m.fleet.CheckWorkspace(ctx, ws.ID); err != nil {
		return driver.Instance{}, m.loseOn(ctx, ws, err)
	}
	inst, err := m.fleet.Create(ctx, m.spec(userID, sessionID, ws.ID, false))
	if err != nil {
		if errors.Is(err, driver.ErrVolumeNotFound) {
			return driver.Instance{}, m.lose(ctx, ws, store.WorkspaceMissing, err)
		}
		return driver.Instance{}, unavailable(err)
	}
	mk, ok, err := m.fleet.Client(inst).Marker(ctx)
	if err != nil {
		m.fleet.Remove(context.WithoutCancel(ctx), inst)
		return driver.Instance{}, unavailable(err)
	}
	if !ok || mk.ID != ws.ID || mk.SessionID != sessionID {
		m.fleet.Remove(context.WithoutCancel(ctx), inst)
		why := "its marker is missing"
		if ok {
			why = fmt.Sprintf("its marker names workspace %q of session %q", mk.ID, mk.SessionID)
		}
		return driver.Instance{}, m.lose(ctx, ws, store.WorkspaceForeign, errors.New(why))
	}
	return inst, nil
}

// spec is the session's instance. Its labels name the session, its owner and its workspace, so an
// operator finds a user's sandboxes with the engine's own tools (docker ps, kubectl get pods -l).
func (m *Manager) spec(userID, sessionID, workspaceID string, fresh bool) driver.Spec {
	data, meta := instance.VolumeNames(workspaceID)
	return driver.Spec{
		Name:   ContainerName(sessionID),
		Labels: map[string]string{driver.LabelSession: sessionID, driver.LabelOwner: userID, driver.LabelWorkspace: workspaceID},
		Data:   data, Meta: meta, Fresh: fresh,
	}
}

// mark writes the workspace's marker through inst's agent and makes the binding ready.
func (m *Manager) mark(ctx context.Context, inst driver.Instance, ws store.Workspace, userID string) error {
	err := m.fleet.Client(inst).SetMarker(ctx, agentapi.Marker{
		ID: ws.ID, SessionID: ws.SessionID, OwnerID: userID, Namespace: m.opts.Namespace, Created: time.Now().UTC(),
	})
	if err != nil {
		return err
	}
	return m.st.SetWorkspaceState(ctx, ws.SessionID, ws.ID, store.WorkspaceReady)
}

// loseOn classifies a failed volume check and loses the workspace accordingly.
func (m *Manager) loseOn(ctx context.Context, ws store.Workspace, err error) error {
	switch {
	case errors.Is(err, driver.ErrVolumeNotFound):
		return m.lose(ctx, ws, store.WorkspaceMissing, err)
	case errors.Is(err, instance.ErrForeignVolume):
		return m.lose(ctx, ws, store.WorkspaceForeign, err)
	}
	return unavailable(err)
}

// lose records that the session's workspace is missing or foreign and returns the error its owner
// sees. A foreign workspace's volumes are kept from reconciliation for good: they are not this
// session's, and may be someone's.
func (m *Manager) lose(ctx context.Context, ws store.Workspace, state string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	if state == store.WorkspaceForeign {
		data, meta := instance.VolumeNames(ws.ID)
		for _, v := range []string{data, meta} {
			if err := m.st.KeepVolume(ctx, v); err != nil {
				m.log.ErrorContext(ctx, "keep foreign volume", "volume", v, "err", err)
			}
		}
	}
	if err := m.st.SetWorkspaceState(ctx, ws.SessionID, ws.ID, state); err != nil {
		m.log.ErrorContext(ctx, "flag lost workspace", "session_id", ws.SessionID, "err", err)
	}
	m.log.WarnContext(ctx, "workspace lost; not replaced", "session_id", ws.SessionID, "workspace", ws.ID, "state", state, "cause", cause)
	return lostError(ws.SessionID, state, ws.ID)
}

// WorkspaceState is a workspace's state as callers see it.
const (
	WorkspaceNone    = "none"    // the session has no workspace yet
	WorkspaceOK      = "ok"      // bound (and, once a sandbox ran, marked)
	WorkspaceMissing = "missing" // a volume of it is gone
	WorkspaceForeign = "foreign" // a volume under its name is not the session's
)

func workspaceState(ws store.Workspace, bound bool) string {
	switch {
	case !bound:
		return WorkspaceNone
	case ws.State == store.WorkspaceMissing:
		return WorkspaceMissing
	case ws.State == store.WorkspaceForeign:
		return WorkspaceForeign
	}
	return WorkspaceOK
}

// Workspace is a session's workspace as callers see it.
type Workspace struct {
	SessionID string
	// ID names the workspace's volumes (instance.VolumeNames); Volume is the one holding the files.
	ID, Volume string
	State      string
	// Usage is measured by the sandbox's agent; Measured is false when it could not be (a lost
	// workspace).
	Measured bool
	Usage    agentapi.Usage
	// Limit is the configured size limit (0: none); LimitEnforced whether the volume driver enforces
	// it (Docker's local driver cannot).
	Limit         int64
	LimitEnforced bool
}

// GetWorkspace reports the session's workspace: its state and, when it is usable, its size (which
// starts the session's sandbox if it was reaped: the size is measured inside).
func (m *Manager) GetWorkspace(ctx context.Context, userID, sessionID string) (Workspace, error) {
	if err := m.checkOwner(ctx, userID, sessionID); err != nil {
		return Workspace{}, err
	}
	ws, bound, err := m.st.Workspace(ctx, sessionID)
	if err != nil {
		return Workspace{}, err
	}
	out := Workspace{SessionID: sessionID, ID: ws.ID, State: workspaceState(ws, bound), Limit: m.opts.WorkspaceLimit,
		LimitEnforced: m.opts.WorkspaceLimitEnforced}
	if bound {
		out.Volume, _ = instance.VolumeNames(ws.ID)
	}
	if out.State == WorkspaceMissing || out.State == WorkspaceForeign {
		return out, nil
	}
	err = m.withAgent(ctx, userID, sessionID, touch, func(_ store.Record, c *agentclient.Client) (err error) {
		out.Usage, err = c.Usage(ctx)
		return err
	})
	if err != nil {
		return out, err
	}
	if !bound {
		// The call above made the sandbox, and with it the workspace.
		if ws, bound, err = m.st.Workspace(ctx, sessionID); err == nil && bound {
			out.ID, out.State = ws.ID, workspaceState(ws, true)
			out.Volume, _ = instance.VolumeNames(ws.ID)
		}
	}
	out.Measured = true
	return out, nil
}

// ResetWorkspace is the owner's way on from a lost workspace. Without adopt it starts a fresh
// workspace: a missing volume is made again empty (the other, and the checkpoint history in it when
// the meta volume survived, is kept); a foreign workspace is replaced by a new one and its volumes
// are left untouched. With adopt the owner vouches for a foreign workspace whose volumes carry its
// labels but whose marker is missing: it is marked as the session's again. A marker naming another
// session is never overridden. It then launches the session's sandbox.
func (m *Manager) ResetWorkspace(ctx context.Context, userID, sessionID string, adopt bool) (Sandbox, []string, error) {
	if err := m.checkOwner(ctx, userID, sessionID); err != nil {
		return Sandbox{}, nil, err
	}
	ws, bound, err := m.st.Workspace(ctx, sessionID)
	if err != nil {
		return Sandbox{}, nil, err
	}
	if !bound || (ws.State != store.WorkspaceMissing && ws.State != store.WorkspaceForeign) {
		return Sandbox{}, nil, fmt.Errorf("%w: the session's workspace is not lost; there is nothing to reset", ErrFailedPrecondition)
	}
	// No sandbox can run on a lost workspace, but a record of one that died may linger.
	if _, err := m.destroy(ctx, sessionID, time.Time{}, "workspace reset"); err != nil {
		return Sandbox{}, nil, err
	}
	switch {
	case adopt:
		if ws.State != store.WorkspaceForeign {
			return Sandbox{}, nil, fmt.Errorf("%w: only a workspace whose marker does not match can be adopted; a missing one cannot", ErrFailedPrecondition)
		}
		if err := m.fleet.CheckWorkspace(ctx, ws.ID); err != nil {
			return Sandbox{}, nil, fmt.Errorf("%w: the volumes found are not this workspace's; they cannot be adopted", ErrFailedPrecondition)
		}
		err = m.st.SetWorkspaceState(ctx, sessionID, ws.ID, store.WorkspacePending)
	case ws.State == store.WorkspaceMissing:
		err = m.st.SetWorkspaceState(ctx, sessionID, ws.ID, store.WorkspacePending)
	default:
		err = m.st.ReplaceWorkspace(ctx, sessionID, ws.ID, randomID())
	}
	if err != nil {
		return Sandbox{}, nil, err
	}
	m.log.InfoContext(ctx, "workspace reset by its owner", "session_id", sessionID, "workspace", ws.ID, "was", ws.State, "adopt", adopt)
	return m.Launch(ctx, userID, sessionID)
}

// forgetWorkspace removes the session's workspace with the session. Volumes of a foreign workspace
// are not the session's and stay.
func (m *Manager) forgetWorkspace(ctx context.Context, sessionID string) error {
	ws, bound, err := m.st.Workspace(ctx, sessionID)
	if err != nil || !bound {
		return err
	}
	if ws.State != store.WorkspaceForeign {
		if err := m.fleet.RemoveWorkspace(ctx, ws.ID); err != nil {
			// Still mounted by an instance that is going away: reconciliation removes it as an
			// orphan once the binding below is gone.
			m.log.WarnContext(ctx, "remove forgotten session's workspace", "session_id", sessionID, "workspace", ws.ID, "err", err)
		}
	}
	return m.st.ForgetWorkspace(ctx, sessionID)
}
