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
}

// New returns a pool of size warm sandboxes.
func New(m *sandbox.Manager, st *store.Store, size int, log *slog.Logger) *Pool {
	return &Pool{m: m, st: st, size: size, holder: m.Options().Replica, log: log, kick: make(chan struct{}, 1)}
}

// Claim implements sandbox.Pool.
func (p *Pool) Claim(ctx context.Context) (driver.Instance, bool) {
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
	p.mu.Unlock()
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
		n, err := p.st.PoolSize(ctx)
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
