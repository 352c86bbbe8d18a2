// Package pool keeps SANDBOX_POOL_SIZE started sandboxes ready, so that a
// session's first command is a claim (one SPOP) instead of a container start.
// It builds on package instance alone: the domain (package sandbox) takes the
// pool as it takes any other dependency, and the pool never reaches back.
package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
)

// Store is the pool's state (package store implements it): a set of warm
// instances shared by every replica, and a refill lease.
type Store interface {
	PoolAdd(ctx context.Context, driverName string, in driver.Instance) error
	PoolClaim(ctx context.Context, driverName string) (in driver.Instance, ok bool, err error)
	PoolRemove(ctx context.Context, driverName string, in driver.Instance) (removed bool, err error)
	PoolSize(ctx context.Context) (int64, error)
	AcquirePoolRefill(ctx context.Context, holder string, lease time.Duration) (bool, error)
}

// Options configure a Pool.
type Options struct {
	// Size is the number of warm sandboxes kept.
	Size int
	// Replica identifies this process in the refill lease.
	Replica string
	// CreateTimeout bounds one creation; the refill lease lasts twice as long.
	CreateTimeout time.Duration
	Logger        *slog.Logger
}

// Pool is the warm pool.
type Pool struct {
	fleet *instance.Fleet
	st    Store
	opts  Options
	log   *slog.Logger
	kick  chan struct{}

	mu      sync.Mutex
	created []driver.Instance // entries this process added, for Drain
}

// New returns a pool of opts.Size warm sandboxes on fleet.
func New(fleet *instance.Fleet, st Store, opts Options) *Pool {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Pool{fleet: fleet, st: st, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}
}

// Claim implements sandbox.Pool: a warm instance, or false when none is ready.
func (p *Pool) Claim(ctx context.Context) (driver.Instance, bool) {
	in, ok, err := p.st.PoolClaim(ctx, p.fleet.DriverName())
	p.Kick()
	if err != nil {
		p.log.WarnContext(ctx, "pool claim", "err", err)
		return driver.Instance{}, false
	}
	return in, ok
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
	for _, in := range created {
		if ok, err := p.st.PoolRemove(ctx, p.fleet.DriverName(), in); err == nil && ok {
			p.fleet.Remove(ctx, in)
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
		ok, err := p.st.AcquirePoolRefill(ctx, p.opts.Replica, 2*p.opts.CreateTimeout)
		if err != nil || !ok {
			return
		}
		n, err := p.st.PoolSize(ctx)
		if err != nil || int(n) >= p.opts.Size {
			return
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		in, err := p.fleet.Create(ctx, driver.Spec{
			Name:   "mgx-pool-" + hex.EncodeToString(b),
			Labels: map[string]string{driver.LabelPool: "1"},
		})
		if err != nil {
			if ctx.Err() == nil {
				p.log.ErrorContext(ctx, "pool refill failed", "err", err)
			}
			return
		}
		if err := p.st.PoolAdd(ctx, p.fleet.DriverName(), in); err != nil {
			p.fleet.Remove(context.WithoutCancel(ctx), in)
			return
		}
		p.mu.Lock()
		p.created = append(p.created, in)
		p.mu.Unlock()
	}
}
