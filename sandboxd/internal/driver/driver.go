// Package driver abstracts where sandboxes run. A driver only manages
// lifecycle — create, remove, inspect, list; everything that happens inside a
// sandbox goes through its sandbox-agent's unix socket, whose path the driver
// reports.
package driver

import (
	"context"
	"errors"
	"net"
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
	// LabelWorkspace is the id of the workspace an instance mounts, and of
	// the workspace a volume belongs to (both of its volumes carry it).
	LabelWorkspace = "mgx.sandboxd.workspace"
	// LabelVolume is a volume's role: VolumeData or VolumeMeta.
	LabelVolume = "mgx.sandboxd.volume"
	// LabelOwner is the user a volume was created for ("" when it was
	// created for the warm pool; the session it went to is in Redis and in
	// its marker then, as a volume's labels cannot change).
	LabelOwner = "mgx.sandboxd.owner"
)

// Volume roles. A workspace is two volumes: the user's files, mounted at
// /workspace, and the workspace's private state beside it (its marker and
// checkpoint history), mounted outside /workspace so nothing the user runs
// there sees or packs it.
const (
	VolumeData = "workspace"
	VolumeMeta = "meta"
)

// ErrNotFound means the sandbox does not exist (any more).
var ErrNotFound = errors.New("sandbox instance not found")

// ErrVolumeNotFound means a volume does not exist.
var ErrVolumeNotFound = errors.New("volume not found")

// ErrVolumeExists means a volume of that name exists already.
var ErrVolumeExists = errors.New("volume exists")

// ErrClaimed means a warm sandbox went to another session's claim first.
var ErrClaimed = errors.New("warm sandbox claimed by another session")

// Spec describes a sandbox to create.
type Spec struct {
	// Name is unique among the driver's sandboxes (a container name).
	Name   string
	Labels map[string]string
	// Data and Meta name the workspace's volumes, mounted at the workspace
	// and at the agent's meta directory. Both must exist: a driver never
	// creates a volume implicitly (an empty one would silently replace a
	// lost workspace).
	Data, Meta string
	// Fresh says the volumes were just created: the driver prepares them
	// (ownership by the sandbox user) before the first start.
	Fresh bool
}

// Volume is a named volume as the driver sees it.
type Volume struct {
	Name    string
	Labels  map[string]string
	Created time.Time
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
	// WorkspaceID is the workspace it mounts (LabelWorkspace).
	WorkspaceID string
	// Version is the engine's version of the instance as described (a Kubernetes resourceVersion;
	// "" where the engine has none): a Claimer's claim is conditional on it.
	Version string
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

// AgentDialer is implemented by drivers whose agents are reached over the network by a route of
// their own (a Kubernetes port-forward through the API server); without it an Instance.Endpoint is
// dialed directly.
type AgentDialer interface {
	DialAgent(ctx context.Context, inst Instance) (net.Conn, error)
}

// Claimer is implemented by drivers whose engine can make the claim of a warm sandbox exclusive by
// itself. The pool's SPOP in Redis is atomic, but Redis replicates asynchronously: a failover can lose
// a pop, and the promoted replica hands the same warm sandbox to a second session. Where the engine
// keeps a version per object (Kubernetes), the claim is an update conditional on the version the pool
// recorded; a conflict is resolved by looking again, and another session's label means ErrClaimed.
// Docker cannot change a container's labels, so its claims rest on Redis alone.
type Claimer interface {
	// Claim marks inst as the session's (LabelSession, and LabelOwner userID) and returns it as it is
	// now; ErrClaimed when another session's claim got it first, ErrNotFound when it is gone.
	// Claiming one's own instance again succeeds.
	Claim(ctx context.Context, inst Instance, userID, sessionID string) (Instance, error)
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

	// CreateVolume creates a named volume carrying labels (LabelManaged
	// and this deployment's LabelNamespace added), or fails with
	// ErrVolumeExists.
	CreateVolume(ctx context.Context, name string, labels map[string]string) (Volume, error)
	// InspectVolume returns one volume or ErrVolumeNotFound; it is found by
	// name whatever its labels say.
	InspectVolume(ctx context.Context, name string) (Volume, error)
	// RemoveVolume removes a volume; a missing one is no error.
	RemoveVolume(ctx context.Context, name string) error
	// ListVolumes returns every volume of this deployment (LabelManaged and
	// its LabelNamespace).
	ListVolumes(ctx context.Context) ([]Volume, error)
	// Close releases the driver's resources.
	Close() error
}
