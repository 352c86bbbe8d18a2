// Package instance creates, reaches and removes sandbox instances on a driver: a container (or a
// local agent process) whose sandbox-agent answers on a unix socket. It knows nothing of sessions,
// owners or Redis; the domain (package sandbox) and the warm pool (package pool) both build on it,
// so neither needs the other to start or stop an instance.
package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

// ErrUnavailable means an instance could not be created or its agent did not answer. The domain
// maps it to its own sandbox.ErrUnavailable; it wraps the engine's or the transport's cause, which
// is logged and never shown to a caller.
var ErrUnavailable = errors.New("sandbox instance unavailable")

// Options configure a Fleet.
type Options struct {
	// CreateTimeout bounds creating an instance until its agent answers.
	CreateTimeout time.Duration
	Logger        *slog.Logger
}

// Fleet is the set of instances on one driver, with a cached agent client per instance.
type Fleet struct {
	drv  driver.Driver
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	clients map[string]cachedClient // by agentKey
}

type cachedClient struct {
	*agentclient.Client
	instance string
}

// New returns the fleet of drv.
func New(drv driver.Driver, opts Options) *Fleet {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Fleet{drv: drv, opts: opts, log: opts.Logger, clients: map[string]cachedClient{}}
}

// DriverName is "docker", "local" or "kubernetes".
func (f *Fleet) DriverName() string { return f.drv.Name() }

// Create creates an instance and waits until its agent answers. What it created is removed again
// when that fails.
func (f *Fleet) Create(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.CreateTimeout)
	defer cancel()
	inst, err := f.drv.Create(ctx, spec)
	if err != nil {
		// A leftover from a crashed creation holds the name: the caller holds the right to create
		// under it (a creating lease, a fresh pool name), so the leftover is its to remove.
		if old, ierr := f.drv.Inspect(ctx, spec.Name); ierr == nil {
			f.log.WarnContext(ctx, "removing leftover sandbox instance", "instance", spec.Name)
			_ = f.drv.Remove(ctx, old.ID)
			inst, err = f.drv.Create(ctx, spec)
		}
	}
	if err != nil {
		return driver.Instance{}, fmt.Errorf("%w: create: %w", ErrUnavailable, err)
	}
	if err := f.waitAgent(ctx, inst); err != nil {
		f.Remove(context.WithoutCancel(ctx), inst)
		return driver.Instance{}, err
	}
	return inst, nil
}

// waitAgent polls the new agent until it answers. Polling at a few milliseconds keeps cold creation
// within a few ms of the engine's own start.
func (f *Fleet) waitAgent(ctx context.Context, inst driver.Instance) error {
	c := f.Client(inst)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Health(hctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: agent of %s did not answer: %w", ErrUnavailable, inst.Name, err)
		case <-tick.C:
		}
	}
}

// Ping checks that an instance's agent answers.
func (f *Fleet) Ping(ctx context.Context, inst driver.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := f.Client(inst).Health(ctx)
	return err
}

// Remove removes an instance and forgets its client. A failure is logged: the instance is then an
// orphan that reconciliation removes later.
func (f *Fleet) Remove(ctx context.Context, inst driver.Instance) {
	f.dropClient(agentKey(inst))
	id := inst.ID
	if id == "" {
		id = inst.Name
	}
	if err := f.drv.Remove(ctx, id); err != nil {
		f.log.ErrorContext(ctx, "remove sandbox instance", "instance", inst.Name, "err", err)
	}
}

// Claim makes a warm instance the session's where the driver can make that exclusive (driver.Claimer);
// elsewhere the pool's atomic pop in Redis is the claim, and inst is returned as it is.
func (f *Fleet) Claim(ctx context.Context, inst driver.Instance, userID, sessionID string) (driver.Instance, error) {
	c, ok := f.drv.(driver.Claimer)
	if !ok {
		return inst, nil
	}
	claimed, err := c.Claim(ctx, inst, userID, sessionID)
	if err != nil {
		return driver.Instance{}, err
	}
	if claimed.WorkspaceID == "" {
		claimed.WorkspaceID = inst.WorkspaceID
	}
	return claimed, nil
}

// Inspect returns one instance by id or name, or driver.ErrNotFound.
func (f *Fleet) Inspect(ctx context.Context, id string) (driver.Instance, error) {
	return f.drv.Inspect(ctx, id)
}

// List returns every instance of this deployment, running or not.
func (f *Fleet) List(ctx context.Context) ([]driver.Instance, error) { return f.drv.List(ctx) }

// Prune removes host state beside instances that no longer exist (run directories), where the
// driver keeps any; it reports how many it removed.
func (f *Fleet) Prune(live []driver.Instance, grace time.Duration) int {
	if p, ok := f.drv.(driver.Pruner); ok {
		return p.Prune(live, grace)
	}
	return 0
}

// Client returns the cached agent client of an instance. The cache is keyed by the agent's address (a
// socket path, or a network endpoint) but remembers the instance: a sandbox re-created under the same
// name (by another replica, say) reuses the address, and the old client's kept-alive connections lead
// to the dead agent.
func (f *Fleet) Client(inst driver.Instance) *agentclient.Client {
	key := agentKey(inst)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[key]
	if ok && c.instance == inst.ID {
		return c.Client
	}
	if ok {
		c.Close()
	}
	c = cachedClient{Client: f.newClient(inst), instance: inst.ID}
	f.clients[key] = c
	return c.Client
}

// agentKey is where an instance's agent answers: its unix socket on this host (Docker, local), or its
// network endpoint (Kubernetes pods).
func agentKey(inst driver.Instance) string {
	if inst.Endpoint != "" {
		return "tcp://" + inst.Endpoint
	}
	return inst.Socket
}

// errNoAgentSecrets means a driver reported a network endpoint without a way to prove its secret.
var errNoAgentSecrets = errors.New("the driver reports a network endpoint but keeps no agent secrets")

func (f *Fleet) newClient(inst driver.Instance) *agentclient.Client {
	if inst.Endpoint == "" {
		return agentclient.New(inst.Socket, inst.PID)
	}
	ref := driver.Instance{ID: inst.ID, Name: inst.Name, Endpoint: inst.Endpoint}
	var dial agentclient.DialFunc
	if d, ok := f.drv.(driver.AgentDialer); ok {
		dial = func(ctx context.Context) (net.Conn, error) { return d.DialAgent(ctx, ref) }
	}
	return agentclient.NewNetwork(inst.Endpoint, dial, func(ctx context.Context) ([]byte, error) {
		s, ok := f.drv.(driver.AgentSecrets)
		if !ok {
			return nil, errNoAgentSecrets
		}
		return s.AgentSecret(ctx, ref)
	})
}

func (f *Fleet) dropClient(key string) {
	f.mu.Lock()
	c, ok := f.clients[key]
	delete(f.clients, key)
	f.mu.Unlock()
	if ok {
		c.Close()
	}
}
