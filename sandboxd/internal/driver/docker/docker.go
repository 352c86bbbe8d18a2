// Package docker runs sandboxes as hardened containers on a Docker engine,
// through the official client with API version negotiation (the engine on
// these machines speaks API 1.41). Docker is used for lifecycle only; the
// sandbox-agent, bind-mounted read-only as the container's entrypoint, serves
// everything else over a unix socket in a bind-mounted host directory.
package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// Paths inside the container.
const (
	agentPath   = "/.mgx/bin/sandbox-agent"
	runPath     = "/.mgx/run"
	agentSocket = "agent.sock"
	// MetaPath is where the workspace's meta volume is mounted: beside /workspace, never inside it.
	MetaPath = "/.mgx/meta"
)

// Options configure the driver.
type Options struct {
	// Image is the sandbox image (SANDBOX_IMAGE).
	Image string
	// AgentBinary is the host path of the static sandbox-agent.
	AgentBinary string
	// RunDir holds one directory per sandbox with the agent's socket.
	RunDir string
	// User the container runs as ("uid:gid" or a name in the image); never
	// root by default.
	User string
	// NanoCPUs is the CPU quota (1e9 = one CPU).
	NanoCPUs int64
	// Memory is the memory limit in bytes; swap is disabled by setting
	// memory+swap to the same value.
	Memory int64
	// PidsLimit caps processes, which stops fork bombs.
	PidsLimit int64
	// Runtime is an optional OCI runtime (e.g. runsc); "" is the engine's
	// default.
	Runtime string
	// Namespace is this deployment's LabelNamespace value.
	Namespace string
	// Network is the network sandboxes join. DefaultNetwork is created on
	// demand as a bridge without inter-container traffic, so one sandbox
	// cannot reach another's dev server; any other value ("bridge", "none",
	// a network of your own) is used as is. Nothing is ever published.
	Network string
	// VolumeDriver creates the workspaces' volumes ("" or "local": the
	// engine's own, a directory under its data root); VolumeOpts are passed
	// to it as driver options (a size for drivers that enforce one).
	VolumeDriver string
	VolumeOpts   map[string]string
}

// DefaultNetwork is the isolated bridge sandboxd creates for sandboxes.
const DefaultNetwork = "mgx-sandbox"

// Driver is the Docker driver.
type Driver struct {
	opts Options
	cli  *client.Client
}

// New connects to the engine named by the environment (DOCKER_HOST, default
// the local socket) and checks that it answers.
func New(ctx context.Context, opts Options) (*Driver, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := cli.Ping(pingCtx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker engine not answering: %w", err)
	}
	if opts.Namespace == "" {
		opts.Namespace = "mgx"
	}
	if opts.AgentBinary == "" {
		cli.Close()
		return nil, errors.New("docker driver: no sandbox-agent binary")
	}
	abs, err := filepath.Abs(opts.AgentBinary)
	if err != nil {
		cli.Close()
		return nil, err
	}
	if err := os.MkdirAll(opts.RunDir, 0o711); err != nil {
		cli.Close()
		return nil, fmt.Errorf("run dir: %w", err)
	}
	if opts.AgentBinary, err = stageAgent(abs, opts.RunDir); err != nil {
		cli.Close()
		return nil, err
	}
	if opts.Network == DefaultNetwork {
		if err := ensureNetwork(ctx, cli); err != nil {
			cli.Close()
			return nil, err
		}
	}
	return &Driver{opts: opts, cli: cli}, nil
}

// stageAgent copies the agent binary into the run directory under a name derived from its content
// and returns the copy's path, which is what sandboxes bind-mount. The engine resolves bind sources on
// its own host, and the run directory is the one path sandboxd shares with that host even when
// sandboxd itself runs in a container (mounted at the same path); the binary next to sandboxd is not.
// Content addressing keeps the file a running sandbox has mounted unchanged when a newer agent is
// staged beside it. It is a plain file, so pruning of per-sandbox directories leaves it alone.
func stageAgent(src, runDir string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("sandbox-agent binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("sandbox-agent binary: %w", err)
	}
	dst := filepath.Join(runDir, "sandbox-agent-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(runDir, ".sandbox-agent-*")
	if err != nil {
		return "", fmt.Errorf("stage sandbox-agent: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, f); err != nil {
		tmp.Close()
		return "", fmt.Errorf("stage sandbox-agent: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	// Rename is atomic, so a concurrent sandboxd never mounts a half-written agent.
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("stage sandbox-agent: %w", err)
	}
	return dst, nil
}

// ensureNetwork creates DefaultNetwork unless it exists: a bridge with
// inter-container communication disabled (sandboxes still reach the
// internet through NAT for package installs).
func ensureNetwork(ctx context.Context, cli *client.Client) error {
	if _, err := cli.NetworkInspect(ctx, DefaultNetwork, network.InspectOptions{}); err == nil {
		return nil
	}
	_, err := cli.NetworkCreate(ctx, DefaultNetwork, network.CreateOptions{
		Driver:  "bridge",
		Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
		Labels:  map[string]string{driver.LabelManaged: "1"},
	})
	if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create network %s: %w", DefaultNetwork, err)
	}
	return nil
}

// Client exposes the engine client (the bench compares against raw exec).
func (d *Driver) Client() *client.Client { return d.cli }

// SetImage replaces the image of sandboxes created from now on (the start-up
// fallback to the dev image).
func (d *Driver) SetImage(image string) { d.opts.Image = image }

// Name implements driver.Driver.
func (d *Driver) Name() string { return "docker" }

// Close implements driver.Driver.
func (d *Driver) Close() error { return d.cli.Close() }

func (d *Driver) runDir(name string) string { return filepath.Join(d.opts.RunDir, name) }

// Create implements driver.Driver.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	dir := d.runDir(spec.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return driver.Instance{}, fmt.Errorf("run dir: %w", err)
	}
	// The agent runs as the sandbox user and must create its socket here,
	// so the sandbox's group may write the directory — until the socket
	// exists: then it is sealed (see seal). The directory stays owned by
	// root, so the sandbox can never chmod it back. Without permission to
	// chown (sandboxd not root) it must be world-writable and stays so.
	sealable := false
	_ = os.Remove(filepath.Join(dir, agentSocket))
	if _, gid, ok := numericUser(d.opts.User); ok && os.Chown(dir, os.Getuid(), gid) == nil && os.Getuid() == 0 {
		sealable = os.Chmod(dir, 0o770) == nil
	}
	if !sealable {
		_ = os.Chmod(dir, 0o777)
	}

	labels := map[string]string{driver.LabelManaged: "1", driver.LabelNamespace: d.opts.Namespace}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	entry := []string{agentPath, "-listen", runPath + "/" + agentSocket, "-workspace", workspace.Root, "-state-dir", "/tmp/.mgx-agent"}
	var mounts []mount.Mount
	if spec.Data != "" || spec.Meta != "" {
		if spec.Data == "" || spec.Meta == "" {
			return driver.Instance{}, errors.New("a workspace needs both its volumes")
		}
		// The engine would create a missing named volume on the fly, empty: a lost workspace must
		// never come back that way, so both must exist now (a removal racing this call is caught
		// afterwards by the caller's marker check).
		for _, v := range []string{spec.Data, spec.Meta} {
			if _, err := d.InspectVolume(ctx, v); err != nil {
				return driver.Instance{}, err
			}
		}
		mounts = []mount.Mount{
			// A fresh workspace volume takes the image's /workspace (its owner, any files); a
			// used one is never refilled from the image, even when the user emptied it.
			{Type: mount.TypeVolume, Source: spec.Data, Target: workspace.Root, VolumeOptions: &mount.VolumeOptions{NoCopy: !spec.Fresh}},
			{Type: mount.TypeVolume, Source: spec.Meta, Target: MetaPath, VolumeOptions: &mount.VolumeOptions{NoCopy: true}},
		}
		entry = append(entry, "-meta-dir", MetaPath)
	}
	cfg := &container.Config{
		Image:      d.opts.Image,
		User:       d.opts.User,
		Labels:     labels,
		WorkingDir: workspace.Root,
		// The agent is PID 1: it reaps every orphan in the sandbox and
		// keeps the container resident.
		Entrypoint: entry,
		Cmd:        []string{},
		Env:        []string{"MGX_SANDBOX=1"},
	}
	hc := &container.HostConfig{
		Binds: []string{
			d.opts.AgentBinary + ":" + agentPath + ":ro",
			dir + ":" + runPath,
		},
		Mounts:      mounts,
		NetworkMode: container.NetworkMode(d.opts.Network),
		// Hardening: no capabilities, no privilege gain through setuid
		// binaries, the engine's default seccomp profile (never
		// unconfined), and nothing published on any host address.
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Resources: container.Resources{
			NanoCPUs:   d.opts.NanoCPUs,
			Memory:     d.opts.Memory,
			MemorySwap: d.opts.Memory,
			PidsLimit:  &d.opts.PidsLimit,
		},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "1"}},
		Runtime:   d.opts.Runtime,
	}
	created, err := d.cli.ContainerCreate(ctx, cfg, hc, nil, nil, spec.Name)
	if err != nil {
		return driver.Instance{}, fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	if spec.Fresh && spec.Meta != "" {
		if err := d.prepareMeta(ctx, created.ID); err != nil {
			_ = d.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
			return driver.Instance{}, err
		}
	}
	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		_ = d.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		return driver.Instance{}, fmt.Errorf("start container %s: %w", spec.Name, err)
	}
	inst, err := d.Inspect(ctx, created.ID)
	if err == nil && sealable {
		err = seal(ctx, dir)
	}
	if err != nil {
		_ = d.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		return driver.Instance{}, err
	}
	return inst, nil
}

// Remove implements driver.Driver.
func (d *Driver) Remove(ctx context.Context, id string) error {
	inst, err := d.Inspect(ctx, id)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Force removal SIGKILLs at once: the caller had the agent flush the
	// workspace first, and a graceful stop would cost the full stop timeout
	// for shells that ignore SIGTERM. Named volumes (the workspace) are never
	// removed with a container; anonymous ones an image declares are.
	err = d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "already in progress") {
		return fmt.Errorf("remove container %s: %w", inst.Name, err)
	}
	_ = os.RemoveAll(d.runDir(inst.Name))
	return nil
}

// Inspect implements driver.Driver.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Instance, error) {
	c, err := d.cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return driver.Instance{}, driver.ErrNotFound
	}
	if err != nil {
		return driver.Instance{}, fmt.Errorf("inspect container: %w", err)
	}
	name := strings.TrimPrefix(c.Name, "/")
	created, _ := time.Parse(time.RFC3339Nano, c.Created)
	inst := driver.Instance{
		ID: c.ID, Name: name, Created: created,
		Socket: filepath.Join(d.runDir(name), agentSocket), Workspace: workspace.Root,
	}
	if c.Config != nil {
		inst.Labels = c.Config.Labels
		inst.WorkspaceID = c.Config.Labels[driver.LabelWorkspace]
	}
	if c.State != nil {
		inst.Running = c.State.Running
		// Under another runtime (gVisor) the socket's peer is the runtime's
		// own process, not the container's init: no pid to check then.
		if d.opts.Runtime == "" {
			inst.PID = c.State.Pid
		}
	}
	return inst, nil
}

// List implements driver.Driver.
func (d *Driver) List(ctx context.Context) ([]driver.Instance, error) {
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{
		All: true,
		Filters: filters.NewArgs(
			filters.Arg("label", driver.LabelManaged+"=1"),
			filters.Arg("label", driver.LabelNamespace+"="+d.opts.Namespace),
		),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]driver.Instance, 0, len(cs))
	for _, c := range cs {
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, driver.Instance{
			ID: c.ID, Name: name, Labels: c.Labels, Running: c.State == "running",
			Created: time.Unix(c.Created, 0), Socket: filepath.Join(d.runDir(name), agentSocket),
			Workspace: workspace.Root, WorkspaceID: c.Labels[driver.LabelWorkspace],
		})
	}
	return out, nil
}

// seal waits for the agent's socket, then takes write permission on the run
// directory away from the sandbox. The directory is a host directory: left
// writable, sandbox code could fill the host's disk past the container's
// limits, or swap the socket for a symlink to a host socket (the client's
// peer-pid check is the second line against that).
func seal(ctx context.Context, dir string) error {
	sock := filepath.Join(dir, agentSocket)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Lstat(sock); err == nil {
			if fi.Mode()&os.ModeSocket == 0 {
				return fmt.Errorf("run dir %s: %s is not a socket", dir, agentSocket)
			}
			return os.Chmod(dir, 0o750)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent socket did not appear: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Prune implements driver.Pruner: run directories of containers removed
// behind sandboxd's back (docker rm, an engine reset) would pile up.
func (d *Driver) Prune(live []driver.Instance, grace time.Duration) int {
	names := make(map[string]bool, len(live))
	for _, in := range live {
		names[in.Name] = true
	}
	entries, err := os.ReadDir(d.opts.RunDir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.IsDir() || names[e.Name()] || time.Since(info.ModTime()) < grace {
			continue
		}
		if os.RemoveAll(filepath.Join(d.opts.RunDir, e.Name())) == nil {
			n++
		}
	}
	return n
}

func numericUser(u string) (int, int, bool) {
	us, gs, _ := strings.Cut(u, ":")
	uid, err := strconv.Atoi(us)
	if err != nil {
		return 0, 0, false
	}
	gid := uid
	if gs != "" {
		if gid, err = strconv.Atoi(gs); err != nil {
			return 0, 0, false
		}
	}
	return uid, gid, true
}
