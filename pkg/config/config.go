// Package config loads a service's configuration from the environment.
//
// Every service declares one struct with `env` and `envDefault` tags
// (github.com/caarlos0/env/v11), usually embedding Common, and calls Load once
// at start. Load fails with named errors so a misconfigured process stops
// before it serves anything. Fields tagged `secret:"true"` are hidden by
// LogValue, the only way configuration should reach a log line.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// DevInternalToken is the default of MGX_INTERNAL_TOKEN. It lets `make run`
// work on a fresh machine without setup; it is public, so every production
// deployment must set its own token. Services log a warning when they run
// with it (see Common.UsesDevInternalToken).
const DevInternalToken = "mgx-dev-internal-token"

// Validation errors. Load wraps them with the offending variable and value,
// so callers can test with errors.Is and operators read what to fix.
var (
	ErrInvalidLogLevel    = errors.New("invalid log level (want debug, info, warn or error)")
	ErrInvalidLogFormat   = errors.New("invalid log format (want text or json)")
	ErrEmptyInternalToken = errors.New("internal token must not be empty")
	ErrNotPositive        = errors.New("must be positive")
	ErrNegative           = errors.New("must not be negative")
)

// Common holds the settings every mgx service has. Embed it in the service's
// config struct.
type Common struct {
	// LogLevel is the minimum slog level: debug, info, warn or error.
	LogLevel string `env:"MGX_LOG_LEVEL" envDefault:"info"`
	// LogFormat is text (for humans) or json (for log collectors).
	LogFormat string `env:"MGX_LOG_FORMAT" envDefault:"text"`
	// InternalToken is the shared secret every internal gRPC call must carry
	// (see package authn). The default is DevInternalToken, which is public:
	// production must set its own. As for every variable, an empty value
	// counts as unset (caarlos0/env semantics) and gets the default.
	InternalToken string `env:"MGX_INTERNAL_TOKEN" envDefault:"mgx-dev-internal-token" secret:"true"`
}

// Validate reports the first invalid Common field. A service struct that
// embeds Common and defines its own Validate must call this one too: its own
// method shadows the promoted one.
func (c Common) Validate() error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("MGX_LOG_LEVEL=%q: %w", c.LogLevel, ErrInvalidLogLevel)
	}
	switch strings.ToLower(c.LogFormat) {
	case "text", "json":
	default:
		return fmt.Errorf("MGX_LOG_FORMAT=%q: %w", c.LogFormat, ErrInvalidLogFormat)
	}
	if c.InternalToken == "" {
		return fmt.Errorf("MGX_INTERNAL_TOKEN: %w", ErrEmptyInternalToken)
	}
	return nil
}

// CommonConfig returns c; through embedding, every service config has it (see package service).
func (c Common) CommonConfig() Common { return c }

// Service holds the settings of a service's life that every mgx service has under its own prefix.
// Embed it with the prefix:
//
//	pkgconfig.Service `envPrefix:"GATEWAY_"`
//
// which gives GATEWAY_METRICS_LISTEN, GATEWAY_SHUTDOWN_TIMEOUT and GATEWAY_DRAIN_DELAY.
type Service struct {
	// MetricsListen serves Prometheus metrics at /metrics on an internal address; empty (the
	// default, so that several instances on one host never collide) turns metrics off.
	MetricsListen string `env:"METRICS_LISTEN"`
	// DrainDelay is how long a stopping service keeps serving while its health already says
	// NOT_SERVING, so load balancers and probes stop sending it calls before it refuses them.
	DrainDelay time.Duration `env:"DRAIN_DELAY" envDefault:"5s"`
	// ShutdownTimeout is how long calls in flight get to finish once draining ends; whatever still
	// runs then is cut.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
}

// ServiceConfig returns s; through embedding, every service config has it (see package service).
func (s Service) ServiceConfig() Service { return s }

// Validate reports the first invalid Service field; prefix is the service's variable prefix
// ("GATEWAY_"), for the message. A service's own Validate must call it, as Common.Validate.
func (s Service) Validate(prefix string) error {
	if s.DrainDelay < 0 {
		return fmt.Errorf("%sDRAIN_DELAY=%s: %w", prefix, s.DrainDelay, ErrNegative)
	}
	if s.ShutdownTimeout <= 0 {
		return fmt.Errorf("%sSHUTDOWN_TIMEOUT=%s: %w", prefix, s.ShutdownTimeout, ErrNotPositive)
	}
	return nil
}

// UsesDevInternalToken reports whether the public development token is in
// use, so a service can say so loudly at start.
func (c Common) UsesDevInternalToken() bool {
	return c.InternalToken == DevInternalToken
}

// Validator is implemented by config structs that check themselves. Load
// calls it after parsing; the error it returns should wrap a named sentinel.
type Validator interface {
	Validate() error
}

// Load parses T from the process environment, applies defaults and runs T's
// Validate method when it has one (on T or *T).
func Load[T any]() (T, error) {
	return load[T](env.Options{})
}

// LoadFrom is Load reading from environ instead of the process environment.
// Tests use it to check a service's config without touching os.Environ, which
// would forbid t.Parallel.
func LoadFrom[T any](environ map[string]string) (T, error) {
	if environ == nil {
		environ = map[string]string{}
	}
	return load[T](env.Options{Environment: environ})
}

func load[T any](opts env.Options) (T, error) {
	cfg, err := env.ParseAsWithOptions[T](opts)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("config: %w", err)
	}
	if v, ok := any(&cfg).(Validator); ok {
		if err := v.Validate(); err != nil {
			var zero T
			return zero, fmt.Errorf("config: %w", err)
		}
	}
	return cfg, nil
}
