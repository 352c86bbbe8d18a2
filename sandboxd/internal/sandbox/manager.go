// Package sandbox is sandboxd's domain: one long-lived sandbox per session,
// owned by the session's user, created on demand (from the warm pool when one
// is ready), reached through its sandbox-agent, destroyed on request, when
// idle, or when reconciliation finds it dead or orphaned.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// Options configure a Manager.
type Options struct {
	// IdleTimeout is how long a sandbox may go without activity before the
	// reaper destroys it.
	IdleTimeout time.Duration
	// CreateTimeout bounds creating a sandbox until its agent answers; it is
	// also the lease of a "creating" record, after which another replica
	// may take over, and the grace period before reconciliation treats an
	// unrecorded instance as an orphan.
	CreateTimeout time.Duration
	// ExecTimeout is the default command timeout; MaxExecTimeout bounds
	// what a caller may ask for.
	ExecTimeout    time.Duration
	MaxExecTimeout time.Duration
	// OutputLimit caps an exec's stdout and stderr each.
	OutputLimit int
	// Replica identifies this process in leases.
	Replica string
	Logger  *slog.Logger
}

// Manager is the sandbox domain service.
type Manager struct {
	opts Options
	drv  driver.Driver
	st   *store.Store
	log  *slog.Logger
	pool Pool

	mu      sync.Mutex
	clients map[string]cachedClient // by agent address (agentRef.key)
	touched map[string]time.Time    // last activity recorded, per session
}

// Pool hands out warm sandboxes. The pool package implements it.
type Pool interface {
	// Claim returns a ready instance, given to the session, or false.
	Claim(ctx context.Context, sessionID, ownerID string) (driver.Instance, bool)
}

// New returns a Manager.
func New(drv driver.Driver, st *store.Store, opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Replica == "" {
		opts.Replica = randomID()
	}
	if opts.CreateTimeout <= 0 {
		opts.CreateTimeout = 60 * time.Second
	}
	if opts.ExecTimeout <= 0 {
		opts.ExecTimeout = 300 * time.Second
	}
	if opts.MaxExecTimeout < opts.ExecTimeout {
		opts.MaxExecTimeout = opts.ExecTimeout
	}
	if opts.OutputLimit <= 0 {
		opts.OutputLimit = 1 << 20
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 1200 * time.Second
	}
	return &Manager{
		opts: opts, drv: drv, st: st, log: opts.Logger,
		clients: make(map[string]cachedClient), touched: make(map[string]time.Time),
	}
}

// SetPool installs the warm pool (after construction: the pool itself needs
// the manager's driver and store).
func (m *Manager) SetPool(p Pool) { m.pool = p }

// Driver returns the driver sandboxes run on.
func (m *Manager) Driver() driver.Driver { return m.drv }

// Options returns the manager's effective options.
func (m *Manager) Options() Options { return m.opts }

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (m *Manager) holder() string { return m.opts.Replica + "/" + randomID() }

// ContainerName is the instance name of a session's sandbox.
func ContainerName(sessionID string) string { return "mgx-sbx-" + sessionID }

// client returns the cached agent client of an instance. The cache is keyed
// by the agent's address but remembers the instance: a sandbox re-created
// under the same name (by another replica, say) reuses the path, and the old
// client's kept-alive connections lead to the dead agent.
func (m *Manager) client(ref agentRef) *agentclient.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[ref.key()]
	if ok && c.instance == ref.instanceID {
		return c.Client
	}
	if ok {
		c.Close()
	}
	c = cachedClient{Client: m.newClient(ref), instance: ref.instanceID}
	m.clients[ref.key()] = c
	return c.Client
}

type cachedClient struct {
	*agentclient.Client
	instance string
}

func (m *Manager) dropClient(key string) {
	m.mu.Lock()
	c, ok := m.clients[key]
	delete(m.clients, key)
	m.mu.Unlock()
	if ok {
		c.Close()
	}
}

// checkOwner returns ErrNotFound unless userID owns the session.
func (m *Manager) checkOwner(ctx context.Context, userID, sessionID string) error {
	if userID == "" {
		return ErrNoUser
	}
	owner, err := m.st.Owner(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && owner != userID) {
		return fmt.Errorf("%w: session %s has no sandbox for this user", ErrNotFound, sessionID)
	}
	return err
}

// Launch ensures the session's sandbox runs, recording userID as the
// session's owner on first use. It returns provisioning log lines.
func (m *Manager) Launch(ctx context.Context, userID, sessionID string) (store.Record, []string, error) {
	if userID == "" {
		return store.Record{}, nil, ErrNoUser
	}
	return m.ensure(ctx, userID, sessionID)
}

// Get returns the session's record without creating anything.
func (m *Manager) Get(ctx context.Context, userID, sessionID string) (store.Record, error) {
	if err := m.checkOwner(ctx, userID, sessionID); err != nil {
		return store.Record{}, err
	}
	r, err := m.st.Get(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Record{}, fmt.Errorf("%w: session %s has no running sandbox", ErrNotFound, sessionID)
	}
	return r, err
}

// List returns the user's sandboxes, or everyone's with all.
func (m *Manager) List(ctx context.Context, userID string, all bool) ([]store.Record, error) {
	if all {
		return m.st.All(ctx)
	}
	if userID == "" {
		return nil, ErrNoUser
	}
	return m.st.ByOwner(ctx, userID)
}

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
	var logs []string
	inst, fromPool := driver.Instance{}, false
	for i := 0; m.pool != nil && i < 3; i++ {
		var ok bool
		if inst, ok = m.pool.Claim(ctx, sessionID, userID); !ok {
			break
		}
		if m.Ping(ctx, inst) == nil {
			fromPool = true
			break
		}
		m.removeInstance(context.WithoutCancel(ctx), inst)
	}
	if fromPool {
		logs = append(logs, fmt.Sprintf("claimed warm sandbox %s", inst.Name))
	} else {
		var err error
		inst, err = m.createInstance(ctx, driver.Spec{
			Name:   ContainerName(sessionID),
			Labels: map[string]string{driver.LabelSession: sessionID, driver.LabelOwner: userID},
		})
		if err != nil {
			m.abandon(sessionID, userID, holder)
			return store.Record{}, nil, err
		}
		logs = append(logs, fmt.Sprintf("created %s sandbox %s", m.drv.Name(), inst.Name))
	}
	rec := store.Record{
		SessionID: sessionID, OwnerID: userID, InstanceID: inst.ID, InstanceName: inst.Name,
		Driver: m.drv.Name(), State: store.StateRunning, Socket: inst.Socket, Endpoint: inst.Endpoint, AgentPID: inst.PID, Workspace: inst.Workspace,
		Created: begin, LastActive: time.Now(),
	}
	if err := m.st.FinishCreate(ctx, holder, rec); err != nil {
		// Destroyed (or taken over) while we created: what we made is ours
		// to remove.
		m.removeInstance(context.WithoutCancel(ctx), inst)
		if errors.Is(err, store.ErrNotHeld) {
			return store.Record{}, nil, fmt.Errorf("%w: sandbox was destroyed while being created", ErrUnavailable)
		}
		return store.Record{}, nil, err
	}
	logs = append(logs, fmt.Sprintf("sandbox ready in %d ms (workspace %s)", time.Since(begin).Milliseconds(), inst.Workspace))
	m.log.InfoContext(ctx, "sandbox created", "session_id", sessionID, "instance", inst.Name,
		"driver", m.drv.Name(), "warm", fromPool, "duration_ms", time.Since(begin).Milliseconds())
	return rec, logs, nil
}

// abandon gives up a creating record after a failed creation.
func (m *Manager) abandon(sessionID, userID, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.st.Delete(ctx, store.Record{SessionID: sessionID, OwnerID: userID}, holder)
}

// CreateInstance creates an instance and waits until its agent answers
// (the warm pool uses it too).
func (m *Manager) CreateInstance(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	return m.createInstance(ctx, spec)
}

func (m *Manager) createInstance(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.CreateTimeout)
	defer cancel()
	inst, err := m.drv.Create(ctx, spec)
	if err != nil {
		// A leftover from a crashed creation holds the name: it has no
		// record (we hold the creating lease), so it is ours to remove.
		if old, ierr := m.drv.Inspect(ctx, spec.Name); ierr == nil {
			m.log.WarnContext(ctx, "removing leftover sandbox instance", "instance", spec.Name)
			_ = m.drv.Remove(ctx, old.ID)
			inst, err = m.drv.Create(ctx, spec)
		}
		if err != nil {
			return driver.Instance{}, fmt.Errorf("%w: create: %w", ErrUnavailable, err)
		}
	}
	if err := m.waitAgent(ctx, inst); err != nil {
		m.removeInstance(context.WithoutCancel(ctx), inst)
		return driver.Instance{}, err
	}
	return inst, nil
}

// waitAgent polls the new agent until it answers. Polling at a few
// milliseconds keeps cold creation within a few ms of the engine's own start.
func (m *Manager) waitAgent(ctx context.Context, inst driver.Instance) error {
	c := m.client(refOf(inst))
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
func (m *Manager) Ping(ctx context.Context, inst driver.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := m.client(refOf(inst)).Health(ctx)
	return err
}

// RemoveInstance removes an instance and forgets its client.
func (m *Manager) RemoveInstance(ctx context.Context, inst driver.Instance) {
	m.removeInstance(ctx, inst)
}

func (m *Manager) removeInstance(ctx context.Context, inst driver.Instance) {
	m.dropClient(refOf(inst).key())
	id := inst.ID
	if id == "" {
		id = inst.Name
	}
	if err := m.drv.Remove(ctx, id); err != nil {
		m.log.ErrorContext(ctx, "remove sandbox instance", "instance", inst.Name, "err", err)
	}
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
		if f, ok := m.drv.(driver.Forgetter); ok {
			if err := f.Forget(ctx, sessionID); err != nil {
				return stopped, fmt.Errorf("%w: forget workspace: %w", ErrUnavailable, err)
			}
		}
		if err := m.st.ForgetOwner(ctx, sessionID); err != nil {
			return stopped, err
		}
	}
	return stopped, nil
}

// DestroyAll destroys the user's sandboxes, or everyone's with all.
func (m *Manager) DestroyAll(ctx context.Context, userID string, all bool) ([]string, error) {
	recs, err := m.List(ctx, userID, all)
	if err != nil {
		return nil, err
	}
	stopped := []string{}
	for _, r := range recs {
		ok, err := m.destroy(ctx, r.SessionID, time.Time{}, "requested")
		if err != nil {
			return stopped, err
		}
		if ok {
			stopped = append(stopped, r.SessionID)
		}
	}
	return stopped, nil
}

// ReapIdle destroys the session's sandbox if it has been idle since cutoff
// and runs no exec. It reports whether it destroyed it.
func (m *Manager) ReapIdle(ctx context.Context, sessionID string, cutoff time.Time) (bool, error) {
	return m.destroy(ctx, sessionID, cutoff, "idle")
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
	m.removeInstance(context.WithoutCancel(ctx), driver.Instance{ID: rec.InstanceID, Name: name, Socket: rec.Socket, Endpoint: rec.Endpoint})
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

// touch records activity at most once per second per sandbox and replica.
func (m *Manager) touch(ctx context.Context, sessionID string) {
	now := time.Now()
	m.mu.Lock()
	last := m.touched[sessionID]
	if now.Sub(last) < time.Second {
		m.mu.Unlock()
		return
	}
	m.touched[sessionID] = now
	m.mu.Unlock()
	if err := m.st.Touch(ctx, sessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.WarnContext(ctx, "record activity", "session_id", sessionID, "err", err)
	}
}

// Touch records preview activity on a sandbox.
func (m *Manager) Touch(ctx context.Context, sessionID string) { m.touch(ctx, sessionID) }

// withAgent runs fn against the session's agent, creating the sandbox when
// it has none, and re-creating it once when its instance turns out dead.
func (m *Manager) withAgent(ctx context.Context, userID, sessionID string, fn func(*agentclient.Client) error) error {
	if userID == "" {
		return ErrNoUser
	}
	// Fast path, one round trip: owner and a running record.
	owner, rec, ok, err := m.st.OwnerAndRecord(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && owner != userID) {
		return fmt.Errorf("%w: session %s has no sandbox for this user", ErrNotFound, sessionID)
	}
	if err != nil {
		return err
	}
	running := ok && rec.State == store.StateRunning
	for attempt := 0; ; attempt++ {
		if !running {
			if rec, _, err = m.ensure(ctx, userID, sessionID); err != nil {
				return err
			}
		}
		running = false
		m.touch(ctx, sessionID)
		err = fn(m.client(recordRef(rec)))
		if err == nil || !errors.Is(err, agentclient.ErrUnavailable) || attempt > 0 || ctx.Err() != nil {
			return agentError(err)
		}
		// The agent is unreachable: if its instance is dead, drop the
		// record and try once more on a fresh sandbox.
		inst, ierr := m.drv.Inspect(ctx, rec.InstanceID)
		if ierr == nil && inst.Running {
			return agentError(err)
		}
		m.log.WarnContext(ctx, "sandbox instance is gone; re-creating", "session_id", sessionID, "instance", rec.InstanceName)
		if _, derr := m.destroy(ctx, sessionID, time.Time{}, "instance gone"); derr != nil {
			return derr
		}
	}
}

// ExecSpec is one command.
type ExecSpec struct {
	Command string
	Cwd     string
	Env     map[string]string
	Timeout time.Duration // 0 = default
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (m *Manager) execRequest(spec ExecSpec) (agentapi.ExecRequest, error) {
	cwd, err := workspace.Clean(spec.Cwd)
	if err != nil {
		return agentapi.ExecRequest{}, fmt.Errorf("%w: cwd %q: %w", ErrInvalidArgument, spec.Cwd, err)
	}
	for k := range spec.Env {
		if !envName.MatchString(k) {
			return agentapi.ExecRequest{}, fmt.Errorf("%w: environment variable name %q", ErrInvalidArgument, k)
		}
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = m.opts.ExecTimeout
	}
	timeout = min(timeout, m.opts.MaxExecTimeout)
	return agentapi.ExecRequest{
		Command: spec.Command, Cwd: cwd, Env: spec.Env, Timeout: timeout, OutputLimit: m.opts.OutputLimit,
	}, nil
}

// Exec runs a command to completion. A timeout kills the command's process
// group and returns ErrExecTimeout.
func (m *Manager) Exec(ctx context.Context, userID, sessionID string, spec ExecSpec) (agentapi.ExecResult, error) {
	var res agentapi.ExecResult
	err := m.runExec(ctx, userID, sessionID, spec, func(c *agentclient.Client, req agentapi.ExecRequest) (agentapi.ExecResult, error) {
		return c.Exec(ctx, req)
	}, &res)
	return res, err
}

// ExecStream runs a command, calling emit with output as it arrives.
func (m *Manager) ExecStream(ctx context.Context, userID, sessionID string, spec ExecSpec, emit func(stderr bool, p []byte) error) (agentapi.ExecResult, error) {
	var res agentapi.ExecResult
	err := m.runExec(ctx, userID, sessionID, spec, func(c *agentclient.Client, req agentapi.ExecRequest) (agentapi.ExecResult, error) {
		return c.ExecStream(ctx, req, emit)
	}, &res)
	return res, err
}

func (m *Manager) runExec(ctx context.Context, userID, sessionID string, spec ExecSpec,
	call func(*agentclient.Client, agentapi.ExecRequest) (agentapi.ExecResult, error), out *agentapi.ExecResult) error {
	req, err := m.execRequest(spec)
	if err != nil {
		return err
	}
	execID := randomID()
	heartbeat := max(min(m.opts.IdleTimeout/4, 30*time.Second), 100*time.Millisecond)
	lease := 3 * heartbeat
	err = m.withAgent(ctx, userID, sessionID, func(c *agentclient.Client) error {
		// The lease keeps the reaper off this sandbox while the command
		// runs; it lapses by itself if this process dies.
		if err := m.st.BeginExec(ctx, sessionID, execID, lease); err != nil {
			if errors.Is(err, store.ErrNotHeld) {
				return fmt.Errorf("%w: sandbox is being destroyed", ErrUnavailable)
			}
			return err
		}
		hbCtx, stopHB := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(heartbeat)
			defer t.Stop()
			for {
				select {
				case <-hbCtx.Done():
					return
				case <-t.C:
					_ = m.st.ExtendExec(hbCtx, sessionID, execID, lease)
					_ = m.st.Touch(hbCtx, sessionID)
				}
			}
		}()
		defer func() {
			stopHB()
			wg.Wait()
			_ = m.st.EndExec(context.WithoutCancel(ctx), sessionID, execID)
		}()
		res, err := call(c, req)
		if err != nil {
			return err
		}
		*out = res
		return nil
	})
	if err != nil {
		return err
	}
	if out.TimedOut {
		return fmt.Errorf("%w after %s", ErrExecTimeout, req.Timeout)
	}
	return nil
}
