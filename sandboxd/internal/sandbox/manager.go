// Package sandbox is sandboxd's domain: one long-lived sandbox per session,
// owned by the session's user, created on demand (from the warm pool when one
// is ready), reached through its sandbox-agent, destroyed on request, when
// idle, or when reconciliation finds it dead or orphaned.
//
// The gRPC edge, the reaper and the preview proxy go through the Manager and
// see only this package's types; instances (package instance), Redis (package
// store) and the agent's wire contract stay behind it.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Options configure a Manager. Every duration and limit is required: their
// defaults live in sandboxd's configuration alone.
type Options struct {
	// IdleTimeout is how long a sandbox may go without activity before the
	// reaper destroys it; an exec's lease heartbeat is derived from it.
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
	// OutputLimit caps each of stdout and stderr of a unary exec.
	OutputLimit int
	// VolumeGrace is how old an unreferenced volume must be before reconciliation removes it (a
	// forgotten session's that could not be removed at once, a warm sandbox's that lost its
	// container); at least CreateTimeout, so a volume made for a creation in flight is never one.
	VolumeGrace time.Duration
	// WorkspaceLimit is the size limit of a workspace in bytes (0: none), reported to callers;
	// WorkspaceLimitEnforced says whether the volume driver enforces it.
	WorkspaceLimit         int64
	WorkspaceLimitEnforced bool
	// Namespace is this deployment's (written into workspace markers).
	Namespace string
	// CheckpointExclude names the directories checkpoints skip wherever they appear (dependencies,
	// build output).
	CheckpointExclude []string
	// CheckpointKeep is how many checkpoints a workspace's history holds (0: the agent's default).
	CheckpointKeep int
	// Replica identifies this process in leases (random when empty).
	Replica string
	Logger  *slog.Logger
}

// ErrOptions means a Manager was built without a required option.
var ErrOptions = errors.New("sandbox manager: invalid options")

func (o *Options) validate() error {
	for name, v := range map[string]time.Duration{"IdleTimeout": o.IdleTimeout, "CreateTimeout": o.CreateTimeout,
		"ExecTimeout": o.ExecTimeout, "MaxExecTimeout": o.MaxExecTimeout} {
		if v <= 0 {
			return fmt.Errorf("%w: %s must be positive", ErrOptions, name)
		}
	}
	if o.MaxExecTimeout < o.ExecTimeout {
		return fmt.Errorf("%w: MaxExecTimeout (%s) is below ExecTimeout (%s)", ErrOptions, o.MaxExecTimeout, o.ExecTimeout)
	}
	if o.OutputLimit <= 0 {
		return fmt.Errorf("%w: OutputLimit must be positive", ErrOptions)
	}
	if o.VolumeGrace < o.CreateTimeout {
		return fmt.Errorf("%w: VolumeGrace (%s) is below CreateTimeout (%s)", ErrOptions, o.VolumeGrace, o.CreateTimeout)
	}
	return nil
}

// Pool hands out warm sandboxes. The pool package implements it.
type Pool interface {
	// Claim returns a ready instance, made userID's session sessionID's, or false.
	Claim(ctx context.Context, userID, sessionID string) (driver.Instance, bool)
}

// Manager is the sandbox domain service.
type Manager struct {
	opts  Options
	fleet *instance.Fleet
	st    *store.Store
	pool  Pool // nil: no warm pool
	log   *slog.Logger

	mu      sync.Mutex
	touched map[string]time.Time // last activity recorded, per session
}

// New returns a Manager over fleet and st; pool may be nil.
func New(fleet *instance.Fleet, st *store.Store, pool Pool, opts Options) (*Manager, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Replica == "" {
		opts.Replica = randomID()
	}
	return &Manager{opts: opts, fleet: fleet, st: st, pool: pool, log: opts.Logger, touched: map[string]time.Time{}}, nil
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (m *Manager) holder() string { return m.opts.Replica + "/" + randomID() }

// ContainerName is the instance name of a session's sandbox.
func ContainerName(sessionID string) string { return "mgx-sbx-" + sessionID }

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
func (m *Manager) Launch(ctx context.Context, userID, sessionID string) (Sandbox, []string, error) {
	if userID == "" {
		return Sandbox{}, nil, ErrNoUser
	}
	r, logs, err := m.ensure(ctx, userID, sessionID)
	return toSandbox(r), logs, err
}

// Get returns the session's sandbox without creating anything.
func (m *Manager) Get(ctx context.Context, userID, sessionID string) (Sandbox, error) {
	if err := m.checkOwner(ctx, userID, sessionID); err != nil {
		return Sandbox{}, err
	}
	r, err := m.st.Get(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return Sandbox{}, fmt.Errorf("%w: session %s has no running sandbox", ErrNotFound, sessionID)
	}
	return toSandbox(r), err
}

// List returns the user's sandboxes, or everyone's with all.
func (m *Manager) List(ctx context.Context, userID string, all bool) ([]Sandbox, error) {
	var (
		recs []store.Record
		err  error
	)
	switch {
	case all:
		recs, err = m.st.All(ctx)
	case userID == "":
		return nil, ErrNoUser
	default:
		recs, err = m.st.ByOwner(ctx, userID)
	}
	if err != nil {
		return nil, err
	}
	out := make([]Sandbox, 0, len(recs))
	for _, r := range recs {
		out = append(out, toSandbox(r))
	}
	return out, nil
}
