// Package pool keeps SANDBOX_POOL_SIZE started sandboxes ready, so that a
// session's first command is a claim (one SPOP) instead of a container start.
package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Pool is the warm pool.
type Pool struct {
	m      *sandbox.Manager
	st     *store.Store
	size   int
	holder string
	log    *slog.Logger
	kick   chan struct{}

	mu      sync.Mutex
	created []store.PoolEntry // entries this process added, for Drain
	// warmed are the instances this process warmed in a driver that keeps
	// the pool itself (driver.Pooler), for Drain.
	warmed []driver.Instance
}

// New returns a pool of size warm sandboxes.
func New(m *sandbox.Manager, st *store.Store, size int, log *slog.Logger) *Pool {
	return &Pool{m: m, st: st, size: size, holder: m.Options().Replica, log: log, kick: make(chan struct{}, 1)}
}

// Claim implements sandbox.Pool. A driver that keeps the pool itself
// (Kubernetes) hands the instance to the session in the engine; otherwise the
// Redis set is the pool and SPOP the claim.
func (p *Pool) Claim(ctx context.Context, sessionID, ownerID string) (driver.Instance, bool) {
	if pl, ok := p.m.Driver().(driver.Pooler); ok {
		inst, err := pl.Claim(ctx, map[string]string{driver.LabelSession: sessionID, driver.LabelOwner: ownerID})
		p.Kick()
		if err != nil {
			if !errors.Is(err, driver.ErrNotFound) {
				p.log.WarnContext(ctx, "pool claim", "err", err)
			}
			return driver.Instance{}, false
		}
		return inst, true
	}
	e, err := p.st.PoolClaim(ctx, p.m.Driver().Name())
	p.Kick()
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.log.WarnContext(ctx, "pool claim", "err", err)
		}
		return driver.Instance{}, false
	}
	return driver.Instance{ID: e.InstanceID, Name: e.InstanceName, Socket: e.Socket, PID: e.PID, Workspace: e.Workspace, Running: true}, true
}

// Drain removes the warm sandboxes this process created that are still
// unclaimed. Called on graceful shutdown, so that a stopped sandboxd (a test,
// a scaled-down replica) leaves no idle containers behind; the remaining
// replicas refill the pool.
func (p *Pool) Drain(ctx context.Context) {
	p.mu.Lock()
	created := p.created
	p.created = nil
	warmed := p.warmed
	p.warmed = nil
	p.mu.Unlock()
	if pl, ok := p.m.Driver().(driver.Pooler); ok {
		for _, in := range warmed {
			if _, err := pl.Unwarm(ctx, in.ID); err != nil {
				p.log.WarnContext(ctx, "pool drain", "instance", in.Name, "err", err)
			}
		}
	}
	for _, e := range created {
		if ok, err := p.st.PoolRemove(ctx, e); err == nil && ok {
			p.m.RemoveInstance(ctx, driver.Instance{ID: e.InstanceID, Name: e.InstanceName, Socket: e.Socket})
		}
	}
}

// Kick asks for a refill soon.
func (p *Pool) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run refills the pool until ctx ends. One replica at a time refills (a
// lease in Redis), so replicas do not overshoot the size together.
func (p *Pool) Run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		p.refill(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

func (p *Pool) refill(ctx context.Context) {
	for ctx.Err() == nil {
		ok, err := p.st.AcquirePoolRefill(ctx, p.holder, 2*p.m.Options().CreateTimeout)
		if err != nil || !ok {
			return
		}
		pl, engine := p.m.Driver().(driver.Pooler)
		n, err := p.size64(ctx, pl, engine)
		if err != nil || int(n) >= p.size {
			return
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		inst, err := p.m.CreateInstance(ctx, driver.Spec{
			Name:   "mgx-pool-" + hex.EncodeToString(b),
			Labels: map[string]string{driver.LabelPool: "1"},
		})
		if err != nil {
			if ctx.Err() == nil {
				p.log.ErrorContext(ctx, "pool refill failed", "err", err)
			}
			return
		}
		if engine {
			p.mu.Lock()
			p.warmed = append(p.warmed, inst)
			p.mu.Unlock()
			continue
		}
		e := store.PoolEntry{InstanceID: inst.ID, InstanceName: inst.Name, Socket: inst.Socket, PID: inst.PID, Workspace: inst.Workspace, Driver: p.m.Driver().Name()}
		if err := p.st.PoolAdd(ctx, e); err != nil {
			p.m.RemoveInstance(context.WithoutCancel(ctx), inst)
			return
		}
		p.mu.Lock()
		p.created = append(p.created, e)
		p.mu.Unlock()
	}
}

// size64 counts warm sandboxes: in the engine for a driver that keeps the
// pool itself (only running ones: a warm pod that died is reconciliation's),
// else in the Redis set.
func (p *Pool) size64(ctx context.Context, pl driver.Pooler, engine bool) (int64, error) {
	if !engine {
		return p.st.PoolSize(ctx)
	}
	warm, err := pl.Warm(ctx)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	for _, in := range warm {
		if in.Running {
			n++
		}
	}
	return n, nil
}
