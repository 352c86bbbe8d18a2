package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
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
}

// Reconcile makes the engine and Redis agree, both ways: records whose
// instance is dead or missing are destroyed, instances that no record (and
// no pool entry) references are removed, stale "creating"/"reaping" records
// whose holder died are finished. Running sandboxes with records are
// re-adopted untouched. Safe to run from several replicas at once: every
// destruction goes through the same claim.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	insts, err := m.drv.List(ctx)
	if err != nil {
		return rep, err
	}
	rep.Instances = len(insts)
	byID := make(map[string]driver.Instance, len(insts))
	for _, in := range insts {
		byID[in.ID] = in
	}
	recs, err := m.st.All(ctx)
	if err != nil {
		return rep, err
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
			why := "instance missing"
			if ok {
				why = "instance not running"
			}
			m.log.WarnContext(ctx, "cleaning sandbox record without a live instance", "session_id", r.SessionID, "instance", r.InstanceName, "why", why)
			if ok, err := m.destroy(ctx, r.SessionID, time.Time{}, why); err == nil && ok {
				rep.RecordsCleaned++
			}
		}
	}

	pool, err := m.st.PoolEntries(ctx)
	if err != nil {
		return rep, err
	}
	for _, e := range pool {
		if in, ok := byID[e.InstanceID]; !ok || !in.Running {
			_, _ = m.st.PoolRemove(ctx, e)
			rep.PoolPruned++
		}
	}

	// Orphans: checked twice against fresh state, because a creation or a
	// pool claim (SPOP, health check, record; at most about a second) may
	// reference an instance between our list and our reads.
	if p, ok := m.drv.(driver.Pruner); ok {
		rep.DirsPruned = p.Prune(insts, m.opts.CreateTimeout)
	}
	candidates := m.unreferenced(ctx, insts, now)
	if len(candidates) == 0 {
		return rep, nil
	}
	select {
	case <-ctx.Done():
		return rep, ctx.Err()
	case <-time.After(orphanRecheck):
	}
	again := m.unreferenced(ctx, candidates, now)
	pl, engine := m.drv.(driver.Pooler)
	for _, in := range again {
		m.log.WarnContext(ctx, "removing orphan sandbox instance", "instance", in.Name, "session_id", in.Labels[driver.LabelSession])
		if engine && in.Labels[driver.LabelPool] == "1" {
			// A dead warm instance: Unwarm also removes its fresh workspace,
			// and leaves it alone if it was claimed meanwhile.
			if ok, err := pl.Unwarm(ctx, in.ID); err == nil && ok {
				rep.OrphansRemoved++
			}
			continue
		}
		m.removeInstance(ctx, in)
		rep.OrphansRemoved++
	}
	return rep, nil
}

// unreferenced returns the instances of insts that no record or pool entry
// references and that are older than the creation grace period.
func (m *Manager) unreferenced(ctx context.Context, insts []driver.Instance, now time.Time) []driver.Instance {
	recs, err := m.st.All(ctx)
	if err != nil {
		return nil
	}
	pool, err := m.st.PoolEntries(ctx)
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
		refID[e.InstanceID] = true
	}
	_, engine := m.drv.(driver.Pooler)
	var out []driver.Instance
	for _, in := range insts {
		if refID[in.ID] || refName[in.Name] {
			continue
		}
		if engine && in.Labels[driver.LabelPool] == "1" && in.Running {
			continue // the engine's own warm pool: its labels are its index
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
	return fmt.Sprintf("instances=%d records=%d orphans_removed=%d records_cleaned=%d pool_pruned=%d dirs_pruned=%d",
		r.Instances, r.Records, r.OrphansRemoved, r.RecordsCleaned, r.PoolPruned, r.DirsPruned)
}
