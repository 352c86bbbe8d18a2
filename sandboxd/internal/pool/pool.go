// Package pool keeps SANDBOX_POOL_SIZE started sandboxes ready, so that a
// session's first command is a claim (one SPOP) instead of a container start.
// It builds on package instance alone: the domain (package sandbox) takes the
// pool as it takes any other dependency, and the pool never reaches back.
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
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
)

// maxClaimTries bounds the warm entries one claim looks at before the caller creates a sandbox.
const maxClaimTries = 3

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

// Claim implements sandbox.Pool: a warm instance made the session's, or false when none is ready.
// Where the driver makes claims exclusive (driver.Claimer), an entry another session's claim got first
// (a pop Redis lost in a failover and handed out twice) is left to that session and the next one tried.
func (p *Pool) Claim(ctx context.Context, userID, sessionID string) (driver.Instance, bool) {
	defer p.Kick()
	for range maxClaimTries {
		in, ok, err := p.st.PoolClaim(ctx, p.fleet.DriverName())
		if err != nil {
			p.log.WarnContext(ctx, "pool claim", "err", err)
			return driver.Instance{}, false
		}
		if !ok {
			return driver.Instance{}, false
		}
		claimed, err := p.fleet.Claim(ctx, in, userID, sessionID)
		switch {
		case err == nil:
			return claimed, true
		case errors.Is(err, driver.ErrClaimed), errors.Is(err, driver.ErrNotFound):
			// Never discarded here: it is another session's sandbox, or nothing.
			p.log.WarnContext(ctx, "warm sandbox went to another claim; trying the next", "instance", in.Name, "err", err)
		default:
			// Unknown whether the claim went through: the entry is not put back, and the pod, if it
			// stays unclaimed and unrecorded, is an orphan that reconciliation removes.
			p.log.WarnContext(ctx, "pool claim", "instance", in.Name, "err", err)
			return driver.Instance{}, false
		}
	}
	return driver.Instance{}, false
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
			p.discard(ctx, in)
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
		in, err := p.create(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.log.ErrorContext(ctx, "pool refill failed", "err", err)
			}
			return
		}
		if err := p.st.PoolAdd(ctx, p.fleet.DriverName(), in); err != nil {
			p.discard(context.WithoutCancel(ctx), in)
			return
		}
		p.mu.Lock()
		p.created = append(p.created, in)
		p.mu.Unlock()
	}
}

// create starts a warm sandbox on a fresh workspace of its own: the workspace becomes the claiming
// session's (the domain binds it in Redis and marks it; volume labels cannot change, so they say
// "pool" for good).
func (p *Pool) create(ctx context.Context) (driver.Instance, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "mgx-pool-" + hex.EncodeToString(b)
	id := randomID()
	if _, err := p.fleet.CreateWorkspace(ctx, id, map[string]string{driver.LabelPool: "1"}); err != nil {
		_ = p.fleet.RemoveWorkspace(context.WithoutCancel(ctx), id)
		return driver.Instance{}, err
	}
	data, meta := instance.VolumeNames(id)
	in, err := p.fleet.Create(ctx, driver.Spec{
		Name:   name,
		Labels: map[string]string{driver.LabelPool: "1", driver.LabelWorkspace: id},
		Data:   data, Meta: meta, Fresh: true,
	})
	if err != nil {
		_ = p.fleet.RemoveWorkspace(context.WithoutCancel(ctx), id)
		return driver.Instance{}, err
	}
	in.WorkspaceID = id
	return in, nil
}

// discard removes an unclaimed warm sandbox and its workspace, which never held anything.
func (p *Pool) discard(ctx context.Context, in driver.Instance) {
	p.fleet.Remove(ctx, in)
	if in.WorkspaceID != "" {
		if err := p.fleet.RemoveWorkspace(ctx, in.WorkspaceID); err != nil {
			p.log.WarnContext(ctx, "remove warm sandbox's workspace", "workspace", in.WorkspaceID, "err", err)
		}
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
