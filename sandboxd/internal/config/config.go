// Package config is sandboxd's configuration, loaded from the environment.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
)

// Validation errors.
var (
	ErrDriver   = errors.New("invalid driver (want auto, docker, local or kubernetes)")
	ErrK8s      = errors.New("invalid Kubernetes driver setting")
	ErrNegative = errors.New("must not be negative")
	ErrPositive = errors.New("must be positive")
	ErrMemory   = errors.New("invalid memory size (e.g. 1g, 512m)")
	ErrAgent    = errors.New("sandbox-agent binary not found (build it: CGO_ENABLED=0 go build ./sandboxd/cmd/sandbox-agent)")
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

	PreviewSecret   string  `env:"SANDBOXD_PREVIEW_SECRET" secret:"true"`
	PreviewTokenTTL Seconds `env:"SANDBOXD_PREVIEW_TOKEN_TTL" envDefault:"600"`
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
		"SANDBOXD_PREVIEW_TOKEN_TTL": c.PreviewTokenTTL.D().Seconds(),
	} {
		if v <= 0 {
			return fmt.Errorf("%s=%v: %w", name, v, ErrPositive)
		}
	}
	if c.PoolSize < 0 {
		return fmt.Errorf("SANDBOX_POOL_SIZE=%d: %w", c.PoolSize, ErrNegative)
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

// defaultAgentBinary is sandbox-agent next to this executable (make build
// puts both in bin/).
func defaultAgentBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return "sandbox-agent"
	}
	return filepath.Join(filepath.Dir(exe), "sandbox-agent")
}
