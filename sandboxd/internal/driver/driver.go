// Package driver abstracts where sandboxes run. A driver only manages
// lifecycle — create, remove, inspect, list; everything that happens inside a
// sandbox goes through its sandbox-agent's unix socket, whose path the driver
// reports (or, for pods, its network endpoint and secret).
package driver

import (
	"context"
	"errors"
	"time"
)

// Labels every driver attaches to what it creates, so reconciliation can
// find sandboxes without any record.
const (
	LabelManaged = "mgx.sandboxd"         // always "1"
	LabelSession = "mgx.sandboxd.session" // the session id, "" for a pool sandbox
	LabelPool    = "mgx.sandboxd.pool"    // "1" for a warm-pool sandbox
	// LabelNamespace separates sandboxd deployments sharing one engine
	// (make run next to make test, staging next to CI): reconciliation only
	// ever sees, and so only ever removes, its own namespace's sandboxes.
	LabelNamespace = "mgx.sandboxd.namespace"
	// LabelOwner is the session owner's id (drivers that keep workspaces
	// beside their instances label those too).
	LabelOwner = "mgx.sandboxd.owner"
)

// ErrNotFound means the sandbox does not exist (any more).
var ErrNotFound = errors.New("sandbox instance not found")

// Spec describes a sandbox to create.
type Spec struct {
	// Name is unique among the driver's sandboxes (a container name).
	Name   string
	Labels map[string]string
}

// Instance is a sandbox as the driver sees it.
type Instance struct {
	ID      string
	Name    string
	Labels  map[string]string
	Running bool
	Created time.Time
	// Socket is the host path of the agent's unix socket.
	Socket string
	// Endpoint is host:port of an agent on the network (a Kubernetes pod)
	// instead of Socket; connections to it prove the sandbox's secret,
	// which the driver gives through AgentSecrets.
	Endpoint string
	// PID is the agent's process id as the host sees it (0 when unknown);
	// sandboxd checks it on every connection to the socket.
	PID int
	// Workspace is the workspace path shown to users.
	Workspace string
}

// Pruner is implemented by drivers that keep host state beside their
// instances (run directories): Prune removes what belongs to no instance in
// live and is older than grace, and reports how many it removed.
type Pruner interface {
	Prune(live []Instance, grace time.Duration) int
}

// AgentSecrets is implemented by drivers whose agents are reached over the
// network (Instance.Endpoint): it returns the instance's per-sandbox secret.
type AgentSecrets interface {
	AgentSecret(ctx context.Context, inst Instance) ([]byte, error)
}

// Pooler is implemented by drivers that keep the warm pool in the engine
// itself (Kubernetes: pods labelled LabelPool), where any replica claims one
// with an optimistic update instead of through sandboxd's Redis set.
type Pooler interface {
	// Claim hands a ready warm instance to a session, relabelling it (and
	// its workspace) with labels; a conflict means someone else got that
	// one first and the next is tried. ErrNotFound when none is ready.
	Claim(ctx context.Context, labels map[string]string) (Instance, error)
	// Warm lists the unclaimed warm instances.
	Warm(ctx context.Context) ([]Instance, error)
	// Unwarm removes a warm instance unless it was claimed meanwhile
	// (false then).
	Unwarm(ctx context.Context, id string) (bool, error)
}

// Forgetter is implemented by drivers whose session workspaces outlive their
// instances (Remove keeps them): Forget deletes a deleted session's.
type Forgetter interface {
	Forget(ctx context.Context, sessionID string) error
}

// Driver runs sandboxes.
type Driver interface {
	// Name is "docker", "local" or "kubernetes".
	Name() string
	// Create creates and starts a sandbox whose agent will serve on the
	// returned Instance's Socket (the caller waits for it to answer).
	Create(ctx context.Context, spec Spec) (Instance, error)
	// Remove stops and deletes a sandbox by ID; a missing one is no error.
	Remove(ctx context.Context, id string) error
	// Inspect returns one sandbox or ErrNotFound.
	Inspect(ctx context.Context, id string) (Instance, error)
	// List returns every sandbox carrying LabelManaged, running or not.
	List(ctx context.Context) ([]Instance, error)
	// Close releases the driver's resources.
	Close() error
}
