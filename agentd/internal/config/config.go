// Package config is agentd's configuration, read from the environment once at start.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/mgx-ai/mgx/pkg/config"
)

// Providers AGENTD_LLM_PROVIDER accepts.
const (
	ProviderAuto      = "auto"
	ProviderOpenAI    = "openai"
	ProviderAnthropic = "anthropic"
	ProviderScripted  = "scripted"
)

// Validation errors.
var (
	ErrInvalidProvider = errors.New("invalid LLM provider (want auto, openai, anthropic or scripted)")
	ErrMissingKey      = errors.New("the chosen LLM provider needs its API key")
	ErrInvalidLimit    = errors.New("must be positive")
)

// Config is agentd's configuration. Every field is an environment variable with a default.
type Config struct {
	config.Common

	// Service: AGENTD_METRICS_LISTEN, AGENTD_DRAIN_DELAY, AGENTD_SHUTDOWN_TIMEOUT.
	config.Service `envPrefix:"AGENTD_"`

	// Listen is the gRPC listen address (host:port or unix:///path).
	Listen string `env:"AGENTD_LISTEN" envDefault:"127.0.0.1:8101"`
	// RedisURL is agentd's own Redis (sessions, messages, event logs, runs, run queue).
	RedisURL string `env:"AGENTD_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0" secret:"true"`
	// SandboxdAddr is the sandboxd gRPC target.
	SandboxdAddr string `env:"SANDBOXD_ADDR" envDefault:"127.0.0.1:8201"`
	// SandboxLaunchTimeout bounds how long creating a session waits for its sandbox.
	SandboxLaunchTimeout time.Duration `env:"AGENTD_SANDBOX_LAUNCH_TIMEOUT" envDefault:"60s"`
	// AgentsFile overrides the embedded agent team (YAML).
	AgentsFile string `env:"AGENTD_AGENTS_FILE"`

	// LLMProvider: auto (OpenAI when OPENAI_API_KEY is set, else Anthropic when ANTHROPIC_API_KEY is
	// set, else scripted), openai, anthropic or scripted.
	LLMProvider      string        `env:"AGENTD_LLM_PROVIDER" envDefault:"auto"`
	Model            string        `env:"AGENTD_MODEL"`
	OpenAIKey        string        `env:"OPENAI_API_KEY" secret:"true"`
	OpenAIBaseURL    string        `env:"OPENAI_BASE_URL"`
	AnthropicKey     string        `env:"ANTHROPIC_API_KEY" secret:"true"`
	AnthropicBaseURL string        `env:"ANTHROPIC_BASE_URL"`
	LLMMaxRetries    int           `env:"AGENTD_LLM_MAX_RETRIES" envDefault:"3"`
	LLMIdleTimeout   time.Duration `env:"AGENTD_LLM_IDLE_TIMEOUT" envDefault:"120s"`
	LLMMaxTokens     int           `env:"AGENTD_LLM_MAX_OUTPUT_TOKENS" envDefault:"4096"`
	PriceInput       float64       `env:"AGENTD_PRICE_INPUT_PER_MTOK" envDefault:"0"`
	PriceOutput      float64       `env:"AGENTD_PRICE_OUTPUT_PER_MTOK" envDefault:"0"`
	// ScriptFile replaces the scripted provider's embedded script.
	ScriptFile string `env:"AGENTD_SCRIPT_FILE"`
	// ScriptedPort is the port the scripted build's server listens on in the sandbox.
	ScriptedPort int `env:"AGENTD_SCRIPTED_PORT" envDefault:"3000"`

	// Bounds of one run.
	MaxSteps     int   `env:"AGENTD_MAX_STEPS" envDefault:"40"`
	MaxToolCalls int   `env:"AGENTD_MAX_TOOL_CALLS" envDefault:"80"`
	MaxTokens    int64 `env:"AGENTD_MAX_TOKENS" envDefault:"500000"`
	RepeatLimit  int   `env:"AGENTD_REPEAT_LIMIT" envDefault:"3"`
	MaxInvalid   int   `env:"AGENTD_MAX_INVALID_OUTPUTS" envDefault:"3"`

	// Runs.
	ReplicaID         string        `env:"AGENTD_REPLICA_ID"`
	RunLeaseTTL       time.Duration `env:"AGENTD_RUN_LEASE_TTL" envDefault:"15s"`
	MaxConcurrentRuns int           `env:"AGENTD_MAX_CONCURRENT_RUNS" envDefault:"4"`
	// RequeueAfter: a run queued this long is re-enqueued when the user's next message is refused
	// (its queue entry may have been lost with the replica that stored it).
	RequeueAfter       time.Duration `env:"AGENTD_REQUEUE_AFTER" envDefault:"30s"`
	EventTailBlockTime time.Duration `env:"AGENTD_EVENT_TAIL_BLOCK" envDefault:"5s"` // re-read period of a waiting event stream
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if err := c.Service.Validate("AGENTD_"); err != nil {
		return err
	}
	switch c.LLMProvider {
	case ProviderAuto, ProviderScripted:
	case ProviderOpenAI:
		if c.OpenAIKey == "" && c.OpenAIBaseURL == "" {
			return fmt.Errorf("AGENTD_LLM_PROVIDER=openai: OPENAI_API_KEY: %w", ErrMissingKey)
		}
	case ProviderAnthropic:
		if c.AnthropicKey == "" {
			return fmt.Errorf("AGENTD_LLM_PROVIDER=anthropic: ANTHROPIC_API_KEY: %w", ErrMissingKey)
		}
	default:
		return fmt.Errorf("AGENTD_LLM_PROVIDER=%q: %w", c.LLMProvider, ErrInvalidProvider)
	}
	for name, v := range map[string]int64{
		"AGENTD_RUN_LEASE_TTL": int64(c.RunLeaseTTL), "AGENTD_MAX_CONCURRENT_RUNS": int64(c.MaxConcurrentRuns),
		"AGENTD_MAX_STEPS": int64(c.MaxSteps), "AGENTD_MAX_TOOL_CALLS": int64(c.MaxToolCalls), "AGENTD_MAX_TOKENS": c.MaxTokens,
	} {
		if v <= 0 {
			return fmt.Errorf("%s: %w", name, ErrInvalidLimit)
		}
	}
	return nil
}

// Provider resolves "auto" to the provider that will be used.
func (c *Config) Provider() string {
	if c.LLMProvider != ProviderAuto {
		return c.LLMProvider
	}
	switch {
	case c.OpenAIKey != "":
		return ProviderOpenAI
	case c.AnthropicKey != "":
		return ProviderAnthropic
	}
	return ProviderScripted
}
