// Package config is sandboxd's configuration, loaded from the environment.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"

	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// Validation errors.
var (
	ErrDriver        = errors.New("invalid driver (want auto, docker, local or kubernetes)")
	ErrK8s           = errors.New("invalid Kubernetes driver setting")
	ErrNegative      = errors.New("must not be negative")
	ErrPositive      = errors.New("must be positive")
	ErrMemory        = errors.New("invalid memory size (e.g. 1g, 512m)")
	ErrPreviewTTL    = errors.New("must be at least 2 seconds")
	ErrPreviewSecret = errors.New("must be at least 16 bytes (a long random string)")
	ErrAgent         = errors.New("sandbox-agent binary not found (build it: CGO_ENABLED=0 go build ./sandboxd/cmd/sandbox-agent)")
	ErrSize          = errors.New("invalid size (e.g. 10g, 512m)")
	ErrOpts          = errors.New("invalid driver options (want k=v,k=v)")
	ErrGrace         = errors.New("must be at least SANDBOX_CREATE_TIMEOUT")
)

// Seconds is a duration given as plain seconds ("1200") or a Go duration
// ("20m").
type Seconds time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Seconds) UnmarshalText(b []byte) error {
	v := strings.TrimSpace(string(b))
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		*s = Seconds(time.Duration(n * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("invalid duration %q (seconds, or e.g. 20m)", v)
	}
	*s = Seconds(d)
	return nil
}

// D returns the duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// Config is sandboxd's configuration. Every variable is listed in the README.
type Config struct {
	pkgconfig.Common

	// Service: SANDBOXD_METRICS_LISTEN, SANDBOXD_DRAIN_DELAY, SANDBOXD_SHUTDOWN_TIMEOUT.
	pkgconfig.Service `envPrefix:"SANDBOXD_"`

	Listen        string `env:"SANDBOXD_LISTEN" envDefault:"127.0.0.1:8201"`
	PreviewListen string `env:"SANDBOXD_PREVIEW_LISTEN" envDefault:"127.0.0.1:8202"`
	RedisURL      string `env:"SANDBOXD_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0" secret:"true"`
	PublicURL     string `env:"MGX_PUBLIC_URL" envDefault:"http://localhost:8000"`
	// Driver: auto (Docker when an engine answers, else local), docker, local,
	// kubernetes (pods in a cluster; see K8s).
	Driver string `env:"SANDBOXD_DRIVER" envDefault:"auto"`
	// Namespace labels this deployment's containers; reconciliation only
	// sees (and removes) its own namespace's. Empty means derived from
	// SANDBOXD_REDIS_URL: replicas sharing a Redis share a namespace, and
	// independent deployments on one engine (make run, tests) never touch
	// each other's sandboxes.
	Namespace   string `env:"SANDBOXD_NAMESPACE"`
	RunDir      string `env:"SANDBOXD_RUN_DIR"`
	AgentBinary string `env:"SANDBOX_AGENT_BINARY"`

	Image string `env:"SANDBOX_IMAGE" envDefault:"mgx-sandbox:latest"`
	// ImageFallback is used (built from the host's static busybox when
	// missing) if Image is not present on the engine, so a fresh machine
	// that cannot pull or build the product image still runs sandboxes.
	// Empty disables the fallback: a missing image is then a start error.
	ImageFallback string  `env:"SANDBOX_IMAGE_FALLBACK" envDefault:"mgx-sandbox-dev:latest"`
	CPU           float64 `env:"SANDBOX_CPU" envDefault:"1"`
	Memory        string  `env:"SANDBOX_MEMORY" envDefault:"1g"`
	PidsLimit     int64   `env:"SANDBOX_PIDS_LIMIT" envDefault:"512"`
	User          string  `env:"SANDBOX_USER" envDefault:"1000:1000"`
	Runtime       string  `env:"SANDBOX_RUNTIME"`
	Network       string  `env:"SANDBOX_NETWORK" envDefault:"mgx-sandbox"`

	// VolumeDriver makes the workspaces' Docker volumes; VolumeOpts ("k=v,k=v") are its driver
	// options. WorkspaceLimit ("10g"; empty: none) is a workspace's size limit: passed to a volume
	// driver other than Docker's own "local" as its "size" option (unless VolumeOpts names one),
	// which such drivers enforce; Docker's local driver has no per-volume quota (a directory on the
	// engine's file system: ext4, or xfs without project quotas), so there the limit is only
	// reported, and sandboxd says so at start.
	VolumeDriver   string `env:"SANDBOX_VOLUME_DRIVER" envDefault:"local"`
	VolumeOpts     string `env:"SANDBOX_VOLUME_OPTS"`
	WorkspaceLimit string `env:"SANDBOX_WORKSPACE_LIMIT"`
	// VolumeGrace is how old a volume nothing references must be before reconciliation removes it.
	VolumeGrace Seconds `env:"SANDBOX_VOLUME_GRACE" envDefault:"3600"`
	// CheckpointExclude ("a,b"; empty: the default list, workspace.HeavyNames: node_modules, .git,
	// build output, caches) names the directories checkpoints skip wherever they appear. "-" skips
	// nothing.
	CheckpointExclude string `env:"SANDBOX_CHECKPOINT_EXCLUDE"`
	// CheckpointKeep is how many checkpoints a workspace's history holds; past it the oldest are
	// dropped and the content only they held is deleted, so the history fits its meta volume.
	CheckpointKeep int `env:"SANDBOX_CHECKPOINT_KEEP" envDefault:"500"`

	IdleTimeout    Seconds `env:"SANDBOX_IDLE_TIMEOUT" envDefault:"1200"`
	GCInterval     Seconds `env:"SANDBOX_GC_INTERVAL" envDefault:"300"`
	CreateTimeout  Seconds `env:"SANDBOX_CREATE_TIMEOUT" envDefault:"60"`
	ExecTimeout    Seconds `env:"SANDBOX_EXEC_TIMEOUT" envDefault:"300"`
	MaxExecTimeout Seconds `env:"SANDBOX_EXEC_MAX_TIMEOUT" envDefault:"3600"`
	OutputLimit    int     `env:"SANDBOX_OUTPUT_LIMIT" envDefault:"1048576"`
	PoolSize       int     `env:"SANDBOX_POOL_SIZE" envDefault:"1"`
	// DestroyOnExit destroys every sandbox of this sandboxd's Redis when it
	// stops gracefully. Off in production, where sandboxes outlive a restart
	// of their manager and are re-adopted; `make run` turns it on so that
	// Ctrl-C leaves no sandbox process behind.
	DestroyOnExit bool `env:"SANDBOXD_DESTROY_ON_EXIT" envDefault:"false"`

	K8s K8s

	// Per-user quotas over every sandbox and replica: commands running at once (exec, streamed
	// exec) and running background processes. 0 means no limit.
	MaxExecsPerUser     int `env:"SANDBOXD_MAX_EXECS_PER_USER" envDefault:"16"`
	MaxProcessesPerUser int `env:"SANDBOXD_MAX_PROCESSES_PER_USER" envDefault:"16"`

	PreviewSecret string `env:"SANDBOXD_PREVIEW_SECRET" secret:"true"`
	// PreviewTokenTTL is how long a preview URL (its capability) works; the same URL is handed out
	// for half of it.
	PreviewTokenTTL Seconds `env:"SANDBOXD_PREVIEW_TOKEN_TTL" envDefault:"43200"`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if err := c.Service.Validate("SANDBOXD_"); err != nil {
		return err
	}
	switch c.Driver {
	case "auto", "docker", "local":
	case "kubernetes":
		if err := c.K8s.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("SANDBOXD_DRIVER=%q: %w", c.Driver, ErrDriver)
	}
	if _, err := c.MemoryBytes(); err != nil {
		return err
	}
	for name, v := range map[string]float64{
		"SANDBOX_CPU": c.CPU, "SANDBOX_IDLE_TIMEOUT": c.IdleTimeout.D().Seconds(), "SANDBOX_GC_INTERVAL": c.GCInterval.D().Seconds(),
		"SANDBOX_CREATE_TIMEOUT": c.CreateTimeout.D().Seconds(), "SANDBOX_EXEC_TIMEOUT": c.ExecTimeout.D().Seconds(),
		"SANDBOX_EXEC_MAX_TIMEOUT": c.MaxExecTimeout.D().Seconds(),
		"SANDBOX_OUTPUT_LIMIT":     float64(c.OutputLimit), "SANDBOX_PIDS_LIMIT": float64(c.PidsLimit),
		"SANDBOXD_PREVIEW_TOKEN_TTL": c.PreviewTokenTTL.D().Seconds(), "SANDBOX_CHECKPOINT_KEEP": float64(c.CheckpointKeep),
	} {
		if v <= 0 {
			return fmt.Errorf("%s=%v: %w", name, v, ErrPositive)
		}
	}
	if _, err := c.WorkspaceLimitBytes(); err != nil {
		return err
	}
	if _, _, err := c.VolumeDriverOpts(); err != nil {
		return err
	}
	if c.VolumeGrace.D() < c.CreateTimeout.D() {
		return fmt.Errorf("SANDBOX_VOLUME_GRACE=%s: %w", c.VolumeGrace.D(), ErrGrace)
	}
	if c.PreviewTokenTTL.D() < 2*time.Second {
		return fmt.Errorf("SANDBOXD_PREVIEW_TOKEN_TTL=%v: %w", c.PreviewTokenTTL.D().Seconds(), ErrPreviewTTL)
	}
	if c.PreviewSecret != "" && len(c.PreviewSecret) < 16 {
		return fmt.Errorf("SANDBOXD_PREVIEW_SECRET: %w", ErrPreviewSecret)
	}
	for name, v := range map[string]int{
		"SANDBOX_POOL_SIZE": c.PoolSize, "SANDBOXD_MAX_EXECS_PER_USER": c.MaxExecsPerUser,
		"SANDBOXD_MAX_PROCESSES_PER_USER": c.MaxProcessesPerUser,
	} {
		if v < 0 {
			return fmt.Errorf("%s=%d: %w", name, v, ErrNegative)
		}
	}
	if c.Namespace == "" {
		sum := sha256.Sum256([]byte(c.RedisURL))
		c.Namespace = "r" + hex.EncodeToString(sum[:6])
	}
	if c.RunDir == "" {
		c.RunDir = filepath.Join(os.TempDir(), "mgx-sandboxd")
	}
	if c.AgentBinary == "" {
		c.AgentBinary = defaultAgentBinary()
	}
	// Pods get the agent from SANDBOX_K8S_AGENT_IMAGE, never from this host.
	if _, err := os.Stat(c.AgentBinary); err != nil && c.Driver != "kubernetes" {
		return fmt.Errorf("SANDBOX_AGENT_BINARY=%q: %w", c.AgentBinary, ErrAgent)
	}
	return nil
}

// MemoryBytes parses SANDBOX_MEMORY.
func (c *Config) MemoryBytes() (int64, error) {
	n, err := units.RAMInBytes(c.Memory)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("SANDBOX_MEMORY=%q: %w", c.Memory, ErrMemory)
	}
	return n, nil
}

// CheckpointExcludes returns the directories checkpoints skip.
func (c *Config) CheckpointExcludes() []string {
	switch v := strings.TrimSpace(c.CheckpointExclude); v {
	case "":
		names := workspace.HeavyNames()
		sort.Strings(names)
		return names
	case "-":
		return []string{}
	default:
		out := []string{}
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
		return out
	}
}

// WorkspaceLimitBytes parses SANDBOX_WORKSPACE_LIMIT (0: none).
func (c *Config) WorkspaceLimitBytes() (int64, error) {
	if strings.TrimSpace(c.WorkspaceLimit) == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(c.WorkspaceLimit)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("SANDBOX_WORKSPACE_LIMIT=%q: %w", c.WorkspaceLimit, ErrSize)
	}
	return n, nil
}

// VolumeDriverOpts parses SANDBOX_VOLUME_OPTS and adds the workspace limit as "size" for a volume
// driver other than Docker's own; enforced says whether the driver enforces the limit.
func (c *Config) VolumeDriverOpts() (opts map[string]string, enforced bool, err error) {
	opts = map[string]string{}
	for _, kv := range strings.Split(c.VolumeOpts, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, false, fmt.Errorf("SANDBOX_VOLUME_OPTS=%q: %w", c.VolumeOpts, ErrOpts)
		}
		opts[k] = v
	}
	limit, err := c.WorkspaceLimitBytes()
	if err != nil || limit == 0 || c.VolumeDriver == "" || c.VolumeDriver == "local" {
		return opts, false, err
	}
	if _, ok := opts["size"]; !ok {
		opts["size"] = strconv.FormatInt(limit, 10)
	}
	return opts, true, nil
}

// defaultAgentBinary is sandbox-agent next to this executable (make build
// puts both in bin/).
func defaultAgentBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return "sandbox-agent"
	}
	return filepath.Join(filepath.Dir(exe), "sandbox-agent")
}
