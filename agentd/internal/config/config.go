// Package config is agentd's configuration, read from the environment once at start.
package config

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/mgx-ai/mgx/agentd/internal/browser"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/web"
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
	ErrInvalidPattern  = errors.New("invalid regular expression")
	ErrNegative        = errors.New("must not be negative")
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

	// LLMProvider: auto (see Provider), openai, anthropic or scripted.
	LLMProvider      string `env:"AGENTD_LLM_PROVIDER" envDefault:"auto"`
	Model            string `env:"AGENTD_MODEL"`
	OpenAIKey        string `env:"OPENAI_API_KEY" secret:"true"`
	OpenAIBaseURL    string `env:"OPENAI_BASE_URL"`
	AnthropicKey     string `env:"ANTHROPIC_API_KEY" secret:"true"`
	AnthropicBaseURL string `env:"ANTHROPIC_BASE_URL"`
	// LLMMaxRetries bounds the retries of a failed model turn (overload, rate limit, 5xx, a broken
	// or stalled stream), each shown to the user; backoff doubles from LLMRetryBaseDelay up to
	// LLMRetryMaxDelay, or follows the provider's Retry-After up to LLMRetryAfterLimit.
	LLMMaxRetries      int           `env:"AGENTD_LLM_MAX_RETRIES" envDefault:"3"`
	LLMRetryBaseDelay  time.Duration `env:"AGENTD_LLM_RETRY_BASE_DELAY" envDefault:"1s"`
	LLMRetryMaxDelay   time.Duration `env:"AGENTD_LLM_RETRY_MAX_DELAY" envDefault:"30s"`
	LLMRetryAfterLimit time.Duration `env:"AGENTD_LLM_RETRY_AFTER_LIMIT" envDefault:"2m"`
	LLMIdleTimeout     time.Duration `env:"AGENTD_LLM_IDLE_TIMEOUT" envDefault:"120s"`
	// LLMMaxTokens overrides every model's output cap; 0 keeps each model's default (llm.MaxOutputTokens).
	LLMMaxTokens int `env:"AGENTD_LLM_MAX_OUTPUT_TOKENS" envDefault:"0"`
	// LLMMaxContinuations bounds how often a text answer cut by the output limit is continued.
	LLMMaxContinuations int `env:"AGENTD_LLM_MAX_CONTINUATIONS" envDefault:"2"`
	// LLMCompletionTokensModels is a regular expression of further OpenAI-compatible models that take
	// max_completion_tokens instead of max_tokens (the o-series and GPT-5 onwards always do).
	LLMCompletionTokensModels string `env:"AGENTD_LLM_COMPLETION_TOKENS_MODELS"`
	// LLMPromptCache puts Anthropic cache_control breakpoints on the tools, system and recent turns.
	LLMPromptCache bool `env:"AGENTD_LLM_PROMPT_CACHE" envDefault:"true"`
	// LLMPrices corrects or extends the built-in list prices: "model=input/output[/cache_read[/cache_write]],…"
	// in USD per million tokens.
	LLMPrices string `env:"AGENTD_LLM_PRICES"`
	// PriceInput and PriceOutput price the models neither the list nor LLMPrices knows.
	PriceInput  float64 `env:"AGENTD_PRICE_INPUT_PER_MTOK" envDefault:"0"`
	PriceOutput float64 `env:"AGENTD_PRICE_OUTPUT_PER_MTOK" envDefault:"0"`
	// ScriptFile replaces the scripted provider's embedded script.
	ScriptFile string `env:"AGENTD_SCRIPT_FILE"`
	// ScriptedPort is the port the scripted build's server listens on in the sandbox.
	ScriptedPort int `env:"AGENTD_SCRIPTED_PORT" envDefault:"3000"`

	// Bounds of one run: the lead's model calls, each member's per task it is given, and the whole
	// team's tool calls and tokens.
	MaxSteps       int   `env:"AGENTD_MAX_STEPS" envDefault:"40"`
	MemberMaxSteps int   `env:"AGENTD_MEMBER_MAX_STEPS" envDefault:"60"`
	MaxToolCalls   int   `env:"AGENTD_MAX_TOOL_CALLS" envDefault:"400"`
	MaxTokens      int64 `env:"AGENTD_MAX_TOKENS" envDefault:"3000000"`
	RepeatLimit    int   `env:"AGENTD_REPEAT_LIMIT" envDefault:"3"`
	MaxInvalid     int   `env:"AGENTD_MAX_INVALID_OUTPUTS" envDefault:"3"`

	// Context: what one model request carries. Past ContextBudget tokens a conversation is condensed
	// (older part summarised); the latest KeepToolOutputs tool outputs stay verbatim, older ones are
	// masked. HistoryTokens bounds the session's earlier conversation a new run's lead is given.
	ContextBudget   int `env:"AGENTD_CONTEXT_BUDGET" envDefault:"80000"`
	KeepToolOutputs int `env:"AGENTD_KEEP_TOOL_OUTPUTS" envDefault:"6"`
	HistoryTokens   int `env:"AGENTD_HISTORY_TOKENS" envDefault:"8000"`
	// LeadToolChoice makes the lead call a tool every turn (OpenAI tool_choice "required", Anthropic
	// "any"); turn it off for OpenAI-compatible servers that reject tool_choice.
	LeadToolChoice bool `env:"AGENTD_LEAD_TOOL_CHOICE" envDefault:"true"`

	// MaxSessionsPerUser bounds how many sessions a user has (every session may hold a sandbox and
	// its workspace); 0 means no bound.
	MaxSessionsPerUser int `env:"AGENTD_MAX_SESSIONS_PER_USER" envDefault:"100"`

	// Runs.
	ReplicaID         string        `env:"AGENTD_REPLICA_ID"`
	RunLeaseTTL       time.Duration `env:"AGENTD_RUN_LEASE_TTL" envDefault:"15s"`
	MaxConcurrentRuns int           `env:"AGENTD_MAX_CONCURRENT_RUNS" envDefault:"4"`
	// RequeueAfter: a run queued this long is re-enqueued when the user's next message is refused
	// (its queue entry may have been lost with the replica that stored it).
	RequeueAfter       time.Duration `env:"AGENTD_REQUEUE_AFTER" envDefault:"30s"`
	EventTailBlockTime time.Duration `env:"AGENTD_EVENT_TAIL_BLOCK" envDefault:"5s"` // re-read period of a waiting event stream

	// Tools that run in agentd (tools.go validates them).
	// Browser bounds preview_check's shared headless chromium (AGENTD_BROWSER_*).
	Browser browser.Config
	// PreviewURL is sandboxd's preview listener as agentd reaches it (the gateway's variable of the
	// same name): preview_check loads previews straight through it. Unset, it loads the preview URL
	// sandboxd hands out (through the gateway), which works when that URL is on this host
	// (MGX_PUBLIC_URL of localhost, as with make run). Never a container's address either way.
	PreviewURL string `env:"SANDBOXD_PREVIEW_URL"`
	// Search chooses web_search's provider (AGENTD_SEARCH_*, SEARXNG_URL, BRAVE_*, TAVILY_*).
	Search web.SearchConfig
	// Fetch bounds fetch_url (AGENTD_FETCH_*).
	Fetch web.FetchConfig
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
	if _, err := llm.ParsePrices(c.LLMPrices); err != nil {
		return fmt.Errorf("AGENTD_LLM_PRICES: %w", err)
	}
	if _, err := c.CompletionTokensModels(); err != nil {
		return err
	}
	for name, v := range map[string]int64{
		"AGENTD_LLM_MAX_RETRIES": int64(c.LLMMaxRetries), "AGENTD_LLM_MAX_OUTPUT_TOKENS": int64(c.LLMMaxTokens),
		"AGENTD_LLM_MAX_CONTINUATIONS": int64(c.LLMMaxContinuations), "AGENTD_KEEP_TOOL_OUTPUTS": int64(c.KeepToolOutputs),
		"AGENTD_MAX_SESSIONS_PER_USER": int64(c.MaxSessionsPerUser),
	} {
		if v < 0 {
			return fmt.Errorf("%s: %w", name, ErrNegative)
		}
	}
	if err := c.validateTools(); err != nil {
		return err
	}
	if c.PriceInput < 0 || c.PriceOutput < 0 {
		return fmt.Errorf("AGENTD_PRICE_INPUT_PER_MTOK / AGENTD_PRICE_OUTPUT_PER_MTOK: %w", ErrNegative)
	}
	for name, v := range map[string]int64{
		"AGENTD_RUN_LEASE_TTL": int64(c.RunLeaseTTL), "AGENTD_MAX_CONCURRENT_RUNS": int64(c.MaxConcurrentRuns),
		"AGENTD_MAX_STEPS": int64(c.MaxSteps), "AGENTD_MAX_TOOL_CALLS": int64(c.MaxToolCalls), "AGENTD_MAX_TOKENS": c.MaxTokens,
		"AGENTD_MEMBER_MAX_STEPS": int64(c.MemberMaxSteps), "AGENTD_CONTEXT_BUDGET": int64(c.ContextBudget),
		"AGENTD_HISTORY_TOKENS": int64(c.HistoryTokens),
	} {
		if v <= 0 {
			return fmt.Errorf("%s: %w", name, ErrInvalidLimit)
		}
	}
	return nil
}

// Provider resolves "auto" to the provider that will be used.
func (c *Config) Provider() string {
	p, _ := c.ProviderChoice()
	return p
}

// ProviderChoice resolves "auto" and says why, for the log: an OpenAI key first, then an Anthropic
// key, then an OpenAI-compatible base URL alone (a local Ollama or vLLM needs no key), else the
// scripted offline provider.
func (c *Config) ProviderChoice() (provider, reason string) {
	if c.LLMProvider != ProviderAuto {
		return c.LLMProvider, "AGENTD_LLM_PROVIDER=" + c.LLMProvider
	}
	switch {
	case c.OpenAIKey != "":
		return ProviderOpenAI, "OPENAI_API_KEY is set"
	case c.AnthropicKey != "":
		return ProviderAnthropic, "ANTHROPIC_API_KEY is set"
	case c.OpenAIBaseURL != "":
		return ProviderOpenAI, "OPENAI_BASE_URL is set without a key (a local OpenAI-compatible server)"
	}
	return ProviderScripted, "no LLM key or base URL is configured"
}

// CompletionTokensModels compiles AGENTD_LLM_COMPLETION_TOKENS_MODELS (nil when unset).
func (c *Config) CompletionTokensModels() (*regexp.Regexp, error) {
	if c.LLMCompletionTokensModels == "" {
		return nil, nil
	}
	re, err := regexp.Compile(c.LLMCompletionTokensModels)
	if err != nil {
		return nil, fmt.Errorf("AGENTD_LLM_COMPLETION_TOKENS_MODELS: %w: %w", ErrInvalidPattern, err)
	}
	return re, nil
}

// Pricing builds the price table: list prices, AGENTD_LLM_PRICES over them, and
// AGENTD_PRICE_*_PER_MTOK for models neither knows. Validate has checked the prices parse.
func (c *Config) Pricing() llm.Pricing {
	overrides, _ := llm.ParsePrices(c.LLMPrices)
	return llm.NewPricing(overrides, llm.Price{InputPerMTok: c.PriceInput, OutputPerMTok: c.PriceOutput})
}

// RetryPolicy is the retry policy of failed model turns.
func (c *Config) RetryPolicy() llm.RetryPolicy {
	return llm.RetryPolicy{MaxRetries: c.LLMMaxRetries, BaseDelay: c.LLMRetryBaseDelay, MaxDelay: c.LLMRetryMaxDelay,
		MaxRetryAfter: c.LLMRetryAfterLimit}
}
