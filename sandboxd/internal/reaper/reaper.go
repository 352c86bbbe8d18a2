// Package reaper destroys idle sandboxes and reconciles the engine with
// Redis, at start and then every sweep interval.
package reaper

import (
	"context"
	"log/slog"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
)

// batch bounds one read of the activity index; a sweep loops until the
// expired range is empty.
const batch = 256

// Reaper runs the sweeps of one replica. It decides nothing about a sandbox itself: the domain names
// the idle candidates and decides, atomically across replicas, which of them to destroy.
type Reaper struct {
	m        *sandbox.Manager
	idle     time.Duration
	interval time.Duration
	log      *slog.Logger
}

// New returns a reaper destroying sandboxes idle for longer than idle, every
// interval.
func New(m *sandbox.Manager, idle, interval time.Duration, log *slog.Logger) *Reaper {
	return &Reaper{m: m, idle: idle, interval: interval, log: log}
}

// Run reconciles and sweeps at once, then every interval, until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	r.log.InfoContext(ctx, "reaper started", "idle_timeout", r.idle.String(), "interval", r.interval.String())
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.Once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once runs one reconciliation and one sweep.
func (r *Reaper) Once(ctx context.Context) {
	rep, err := r.m.Reconcile(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.ErrorContext(ctx, "reconcile failed", "err", err)
	} else if rep.OrphansRemoved+rep.RecordsCleaned+rep.PoolPruned+rep.DirsPruned+rep.VolumesRemoved+rep.WorkspacesFlagged > 0 {
		r.log.InfoContext(ctx, "reconciled", "report", rep.String())
	}
	n, err := r.Sweep(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.ErrorContext(ctx, "sweep failed", "err", err)
	}
	if n > 0 {
		r.log.InfoContext(ctx, "sweep reclaimed idle sandboxes", "count", n)
	}
}

// Sweep destroys every sandbox idle since now-idle that runs no exec. It
// reads only the expired range of the activity index.
func (r *Reaper) Sweep(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-r.idle)
	reaped := 0
	seen := map[string]bool{}
	for {
		ids, err := r.m.IdleCandidates(ctx, cutoff, batch)
		if err != nil {
			return reaped, err
		}
		progress := false
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			progress = true
			ok, err := r.m.ReapIdle(ctx, id, cutoff)
			if err != nil {
				r.log.ErrorContext(ctx, "reap sandbox", "session_id", id, "err", err)
				continue
			}
			if ok {
				reaped++
				reclaimed.Add(ctx, 1)
				r.log.InfoContext(ctx, "reclaimed idle sandbox", "session_id", id, "idle_timeout", r.idle.String())
			}
		}
		// Busy or recently active sandboxes stay in the range until their
		// next touch; stop once a batch holds nothing new.
		if !progress || len(ids) < batch {
			return reaped, nil
		}
	}
}
