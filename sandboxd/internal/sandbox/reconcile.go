package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// orphanRecheck is the pause before an unreferenced instance is checked
// again and removed; it outlasts a pool claim's health check.
const orphanRecheck = 1500 * time.Millisecond

// ReconcileReport counts what one reconciliation fixed.
type ReconcileReport struct {
	Instances      int
	Records        int
	OrphansRemoved int
	RecordsCleaned int
	PoolPruned     int
	DirsPruned     int
	// Volumes counts this deployment's volumes; VolumesRemoved the orphans removed; VolumesKept
	// those left alone because they predate this Redis's memory of volumes (or were kept as
	// foreign); WorkspacesFlagged the workspaces found missing a volume.
	Volumes           int
	VolumesRemoved    int
	VolumesKept       int
	WorkspacesFlagged int
}

// Reconcile makes the engine and Redis agree, both ways: records whose
// instance is dead or missing are destroyed, instances that no record (and
// no pool entry) references are removed, stale "creating"/"reaping" records
// whose holder died are finished. Running sandboxes with records are
// re-adopted untouched. Safe to run from several replicas at once: every
// destruction goes through the same claim.
//
// Volumes are reconciled after instances, both ways: see reconcileVolumes.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	if err := m.reconcileInstances(ctx, &rep); err != nil {
		return rep, err
	}
	return rep, m.reconcileVolumes(ctx, &rep)
}

func (m *Manager) reconcileInstances(ctx context.Context, rep *ReconcileReport) error {
	insts, err := m.fleet.List(ctx)
	if err != nil {
		return err
	}
	rep.Instances = len(insts)
	byID := make(map[string]driver.Instance, len(insts))
	for _, in := range insts {
		byID[in.ID] = in
	}
	recs, err := m.st.All(ctx)
	if err != nil {
		return err
	}
	rep.Records = len(recs)
	now := time.Now()
	for _, r := range recs {
		switch r.State {
		case store.StateCreating, store.StateReaping:
			if r.HolderUntil.After(now) {
				continue // someone is on it
			}
			m.log.WarnContext(ctx, "finishing abandoned sandbox transition", "session_id", r.SessionID, "state", r.State)
			if ok, err := m.destroy(ctx, r.SessionID, time.Time{}, "abandoned "+r.State); err == nil && ok {
				rep.RecordsCleaned++
			}
		case store.StateRunning:
			in, ok := byID[r.InstanceID]
			if ok && in.Running {
				_ = m.st.Reindex(ctx, r)
				continue
			}
			why := reasonMissing
			if ok {
				why = reasonNotRunning
			}
			m.log.WarnContext(ctx, "cleaning sandbox record without a live instance", "session_id", r.SessionID, "instance", r.InstanceName, "why", why)
			if ok, err := m.destroy(ctx, r.SessionID, time.Time{}, why); err == nil && ok {
				rep.RecordsCleaned++
			}
		}
	}

	pool, err := m.st.PoolEntries(ctx, m.fleet.DriverName())
	if err != nil {
		return err
	}
	for _, e := range pool {
		if in, ok := byID[e.ID]; !ok || !in.Running {
			if removed, _ := m.st.PoolRemove(ctx, m.fleet.DriverName(), e); removed {
				m.discardWarm(ctx, e)
			}
			rep.PoolPruned++
		}
	}

	// Orphans: checked twice against fresh state, because a creation or a
	// pool claim (SPOP, health check, record; at most about a second) may
	// reference an instance between our list and our reads.
	rep.DirsPruned = m.fleet.Prune(insts, m.opts.CreateTimeout)
	candidates := m.unreferenced(ctx, insts, now)
	if len(candidates) == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(orphanRecheck):
	}
	again := m.unreferenced(ctx, candidates, now)
	for _, in := range again {
		m.log.WarnContext(ctx, "removing orphan sandbox instance", "instance", in.Name, "session_id", in.Labels[driver.LabelSession])
		m.fleet.Remove(ctx, in)
		rep.OrphansRemoved++
	}
	return nil
}

// unreferenced returns the instances of insts that no record or pool entry
// references and that are older than the creation grace period.
func (m *Manager) unreferenced(ctx context.Context, insts []driver.Instance, now time.Time) []driver.Instance {
	recs, err := m.st.All(ctx)
	if err != nil {
		return nil
	}
	pool, err := m.st.PoolEntries(ctx, m.fleet.DriverName())
	if err != nil {
		return nil
	}
	refID, refName := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		refID[r.InstanceID] = true
		refName[ContainerName(r.SessionID)] = true
		if r.InstanceName != "" {
			refName[r.InstanceName] = true
		}
	}
	for _, e := range pool {
		refID[e.ID] = true
	}
	var out []driver.Instance
	for _, in := range insts {
		if refID[in.ID] || refName[in.Name] {
			continue
		}
		if now.Sub(in.Created) < m.opts.CreateTimeout {
			continue // may be a creation in flight (pool refill, a session's first launch)
		}
		out = append(out, in)
	}
	return out
}

// String renders a report for logs.
func (r ReconcileReport) String() string {
	return fmt.Sprintf("instances=%d records=%d orphans_removed=%d records_cleaned=%d pool_pruned=%d dirs_pruned=%d "+
		"volumes=%d volumes_removed=%d volumes_kept=%d workspaces_flagged=%d",
		r.Instances, r.Records, r.OrphansRemoved, r.RecordsCleaned, r.PoolPruned, r.DirsPruned,
		r.Volumes, r.VolumesRemoved, r.VolumesKept, r.WorkspacesFlagged)
}

// reconcileVolumes makes volumes and workspace bindings agree, both ways:
//
//   - A ready workspace one of whose volumes is gone is flagged missing, so its owner's next call is
//     told instead of getting an empty workspace.
//   - A volume no binding, warm sandbox or instance references, older than VolumeGrace, is removed:
//     what is left of a forgotten session whose removal failed, a warm sandbox's whose container
//     died. Never one created before this Redis first reconciled volumes (the data that referenced
//     it is what was lost: an operator decides), nor one kept as foreign.
func (m *Manager) reconcileVolumes(ctx context.Context, rep *ReconcileReport) error {
	epoch, err := m.st.VolumeEpoch(ctx)
	if err != nil {
		return err
	}
	vols, err := m.fleet.ListVolumes(ctx)
	if err != nil {
		return err
	}
	rep.Volumes = len(vols)
	present := make(map[string]bool, len(vols))
	for _, v := range vols {
		present[v.Name] = true
	}
	wss, err := m.st.Workspaces(ctx)
	if err != nil {
		return err
	}
	referenced := map[string]bool{}
	for _, ws := range wss {
		referenced[ws.ID] = true
		if ws.State != store.WorkspaceReady {
			continue
		}
		data, meta := instance.VolumeNames(ws.ID)
		if present[data] && present[meta] {
			continue
		}
		// Not listed is not yet gone: a volume found under its name without this deployment's
		// labels is the resume's check to judge (foreign), not this one's.
		if err := m.fleet.CheckWorkspace(ctx, ws.ID); errors.Is(err, driver.ErrVolumeNotFound) {
			_ = m.lose(ctx, ws, store.WorkspaceMissing, err)
			rep.WorkspacesFlagged++
		}
	}
	// Read after the bindings: a warm sandbox claimed in between is in one or the other.
	pool, err := m.st.PoolEntries(ctx, m.fleet.DriverName())
	if err != nil {
		return err
	}
	for _, e := range pool {
		referenced[e.WorkspaceID] = true
	}
	insts, err := m.fleet.List(ctx)
	if err != nil {
		return err
	}
	for _, in := range insts {
		referenced[in.WorkspaceID] = true
	}
	kept, err := m.st.KeptVolumes(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, v := range vols {
		id := v.Labels[driver.LabelWorkspace]
		switch {
		case id == "" || referenced[id]:
		case kept[v.Name] || v.Created.Before(epoch):
			rep.VolumesKept++
		case now.Sub(v.Created) < m.opts.VolumeGrace:
		default:
			// Checked once more against a fresh binding: a session launched meanwhile binds before it
			// creates anything, so a binding naming id now means it is in use.
			if in, err := m.volumeInUse(ctx, id); err != nil || in {
				continue
			}
			if err := m.fleet.RemoveVolume(ctx, v.Name); err != nil {
				m.log.WarnContext(ctx, "remove orphan volume", "volume", v.Name, "err", err)
				continue
			}
			m.log.WarnContext(ctx, "removed orphan volume", "volume", v.Name, "workspace", id, "age", now.Sub(v.Created).Round(time.Second).String())
			rep.VolumesRemoved++
		}
	}
	if rep.VolumesKept > 0 {
		m.log.InfoContext(ctx, "volumes kept: they predate this Redis's records or were found foreign; remove them by hand if they are not needed",
			"count", rep.VolumesKept)
	}
	return nil
}

// volumeInUse reports whether any binding names workspace id.
func (m *Manager) volumeInUse(ctx context.Context, id string) (bool, error) {
	wss, err := m.st.Workspaces(ctx)
	if err != nil {
		return false, err
	}
	for _, ws := range wss {
		if ws.ID == id {
			return true, nil
		}
	}
	return false, nil
}
