// Package local runs each sandbox as a sandbox-agent host process in its own
// directory. It exists for machines without a container engine and is NOT
// isolation: commands run as sandboxd's own user with full access to the
// host. Only the file API is confined to the sandbox's directory.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/proctree"
)

// Options configure the driver.
type Options struct {
	// AgentBinary is the sandbox-agent to run.
	AgentBinary string
	// RunDir holds one directory per sandbox: its workspace, the agent's
	// socket, state and metadata.
	RunDir string
}

// Driver is the local driver.
type Driver struct {
	opts Options
}

// meta is what the driver remembers about a sandbox, on disk so a restarted
// sandboxd re-adopts running agents as the Docker driver re-adopts
// containers.
type meta struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Created time.Time         `json:"created"`
	PID     int               `json:"pid"`
	// Data names the volume holding the workspace ("" for an instance without volumes, whose
	// workspace is its own directory's).
	Data string `json:"data,omitempty"`
}

// New returns a local driver.
func New(opts Options) (*Driver, error) {
	if opts.AgentBinary == "" {
		return nil, errors.New("local driver: no sandbox-agent binary")
	}
	abs, err := filepath.Abs(opts.AgentBinary)
	if err != nil {
		return nil, err
	}
	opts.AgentBinary = abs
	if err := os.MkdirAll(opts.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	return &Driver{opts: opts}, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "local" }

// Close implements driver.Driver. Agents keep running, like containers.
func (d *Driver) Close() error { return nil }

func (d *Driver) dir(name string) string { return filepath.Join(d.opts.RunDir, name) }

func (d *Driver) instance(m meta) driver.Instance {
	dir := d.dir(m.Name)
	ws := filepath.Join(dir, "workspace")
	if m.Data != "" {
		ws = d.volumeData(m.Data)
	}
	return driver.Instance{
		ID: m.Name, Name: m.Name, Labels: m.Labels, Created: m.Created,
		Running: d.alive(m), Socket: filepath.Join(dir, "agent.sock"), Workspace: ws, PID: m.PID,
		WorkspaceID: m.Labels[driver.LabelWorkspace],
	}
}

// alive reports whether m's agent still runs; the pid must still be an agent
// serving this directory's socket, not a recycled pid.
func (d *Driver) alive(m meta) bool {
	if m.PID <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(m.PID), "cmdline"))
	if err != nil {
		return false
	}
	stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(m.PID), "stat"))
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
		return false
	}
	return strings.Contains(string(cmdline), filepath.Join(d.dir(m.Name), "agent.sock"))
}

// Create implements driver.Driver.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	if spec.Name == volumesDir {
		return driver.Instance{}, fmt.Errorf("local sandbox name %q is reserved", spec.Name)
	}
	dir := d.dir(spec.Name)
	if _, err := os.Stat(dir); err == nil {
		return driver.Instance{}, fmt.Errorf("local sandbox %s already exists", spec.Name)
	}
	ws := filepath.Join(dir, "workspace")
	var metaArgs []string
	if spec.Data != "" || spec.Meta != "" {
		if spec.Data == "" || spec.Meta == "" {
			return driver.Instance{}, errors.New("a workspace needs both its volumes")
		}
		for _, v := range []string{spec.Data, spec.Meta} {
			if _, err := d.InspectVolume(ctx, v); err != nil {
				return driver.Instance{}, err
			}
		}
		ws = d.volumeData(spec.Data)
		metaArgs = []string{"-meta-dir", d.volumeData(spec.Meta)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return driver.Instance{}, err
	}
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return driver.Instance{}, err
	}
	labels := map[string]string{driver.LabelManaged: "1"}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return driver.Instance{}, err
	}
	defer logf.Close()
	// A home of the sandbox's own: login shells then do not run the developer's personal profile
	// (whose side effects — a version manager rehashing under a lock, say — can stall every command),
	// and tools' caches and dotfiles stay inside the sandbox's directory.
	home, tmp := filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	cmd := exec.Command(d.opts.AgentBinary,
		"-listen", filepath.Join(dir, "agent.sock"), "-workspace", ws,
		"-state-dir", filepath.Join(dir, "state"), "-owned-ports",
		// The sandbox's own files: the files API serves a hard-linked file only when all its links lie
		// here — pnpm's store sits in the home, a host file anywhere else.
		"-link-scope", strings.Join([]string{ws, home, tmp}, string(filepath.ListSeparator)))
	cmd.Args = append(cmd.Args, metaArgs...)
	cmd.Dir = ws
	for _, d := range []string{home, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return driver.Instance{}, err
		}
	}
	cmd.Env = sandboxEnv(spec.Name, home, tmp)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a Ctrl-C aimed at sandboxd must not kill sandboxes,
	// which outlive sandboxd restarts here as containers do.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return driver.Instance{}, fmt.Errorf("start agent: %w", err)
	}
	go func() { _ = cmd.Wait() }() // reap it when it exits while we run
	m := meta{Name: spec.Name, Labels: labels, Created: time.Now().UTC(), PID: cmd.Process.Pid, Data: spec.Data}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), b, 0o600); err != nil {
		_ = cmd.Process.Kill()
		return driver.Instance{}, err
	}
	return d.instance(m), nil
}

func (d *Driver) load(name string) (meta, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || name == volumesDir {
		return meta{}, driver.ErrNotFound
	}
	b, err := os.ReadFile(filepath.Join(d.dir(name), "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return meta{}, driver.ErrNotFound
	}
	if err != nil {
		return meta{}, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, fmt.Errorf("local sandbox %s: %w", name, err)
	}
	return m, nil
}

// Budgets of Remove: the agent's own shutdown, then each sweep of the driver.
const (
	agentStopGrace = 3 * time.Second
	sweepBudget    = 5 * time.Second
)

// Remove implements driver.Driver. Every process of the sandbox ends with it, in three steps, each covering
// what the one before cannot:
//
//  1. SIGTERM to the agent: it ends its whole tree itself. As a child subreaper it holds every process of the
//     sandbox below it, setsid'd and double-forked daemons included (agent.Server.stopAll).
//  2. An agent that does not exit in time (hung, stopped) is not SIGKILLed alone — its orphans would go to
//     init and lose the ancestry that names them — but frozen and killed with its whole tree from here.
//  3. Processes no tree reaches any more, orphaned by an agent that died earlier (a crash, an OOM kill) and
//     now children of init, are found by the sandbox's marker in their environment (markerEnv).
//
// Why not a cgroup per sandbox, which no process can leave by forking: it needs root and a writable, delegated
// cgroup v2 hierarchy, which the machines this driver exists for (a laptop without a container engine, a CI
// runner, a container with a read-only or v1 cgroup fs) mostly lack; ancestry and environment work for any
// user on any of them. And the driver is not isolation: commands run as sandboxd's user, so one that means to
// escape can (clear its environment and outlive step 3 after an agent crash; as root, leave a cgroup too).
// This is about ordinary programs — dev servers, watchers, daemons — never outliving their sandbox.
func (d *Driver) Remove(ctx context.Context, id string) error {
	m, err := d.load(id)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	sweep := func(sel proctree.Selector) error {
		sweepCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sweepBudget)
		defer cancel()
		if err := proctree.End(sweepCtx, sel); err != nil {
			return fmt.Errorf("local sandbox %s: end its processes: %w", id, err)
		}
		return nil
	}
	var errs []error
	if d.alive(m) {
		_ = syscall.Kill(m.PID, syscall.SIGTERM)
		deadline := time.Now().Add(agentStopGrace)
		for d.alive(m) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if d.alive(m) {
			errs = append(errs, sweep(proctree.Tree(m.PID)))
		}
	}
	errs = append(errs, sweep(proctree.Marked(markerEnv(m.Name))))
	// The directory goes even when a process could not be ended (another user's, after a setuid program):
	// keeping it would only block re-creating the sandbox under its name. The error is the caller's to log.
	errs = append(errs, os.RemoveAll(d.dir(id)))
	return errors.Join(errs...)
}

// markerEnv is the environment entry every process of the sandbox named name inherits from its agent.
func markerEnv(name string) string { return "MGX_SANDBOX_ID=" + name }

// Inspect implements driver.Driver.
func (d *Driver) Inspect(_ context.Context, id string) (driver.Instance, error) {
	m, err := d.load(id)
	if err != nil {
		return driver.Instance{}, err
	}
	return d.instance(m), nil
}

// List implements driver.Driver.
func (d *Driver) List(context.Context) ([]driver.Instance, error) {
	entries, err := os.ReadDir(d.opts.RunDir)
	if err != nil {
		return nil, err
	}
	var out []driver.Instance
	for _, e := range entries {
		if m, err := d.load(e.Name()); err == nil {
			out = append(out, d.instance(m))
		}
	}
	return out, nil
}

// defaultPath is the PATH of a sandbox when sandboxd itself has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sandboxEnv is the whole environment of a sandbox's agent, and so of every command it runs. It is an
// explicit list, never derived from sandboxd's own environment: that holds the internal service token,
// Redis URLs and the demo password, and with them any user's code could call sandboxd or agentd as any
// other user. PATH is kept because it only says where the host's tools are. The marker names the sandbox
// (its session), nothing secret, so Remove can find its processes.
func sandboxEnv(name, home, tmp string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	return []string{
		"PATH=" + path,
		"HOME=" + home,
		"TMPDIR=" + tmp,
		"LANG=C.UTF-8",
		"MGX_SANDBOX=1",
		markerEnv(name),
	}
}
