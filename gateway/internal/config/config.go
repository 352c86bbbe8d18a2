// Package config is the gateway's configuration, read from the environment
// once at start (see README for every variable).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/previewhost"
)

// Validation errors.
var (
	ErrShortJWTSecret = errors.New("must be at least 32 bytes")
	ErrBadURL         = errors.New("must be an absolute http(s) URL")
	ErrNotPositive    = errors.New("must be positive")
	ErrNegative       = errors.New("must not be negative")
	ErrGraceTooLong   = errors.New("must be at most 1m: the grace is for concurrent refreshes, not for replays")
	ErrBadCIDR        = errors.New("must be CIDRs like 10.0.0.0/8")
	ErrDemoPassword   = errors.New("MGX_DEMO_PASSWORD must be at least 8 characters when MGX_DEMO_EMAIL is set")
)

// Config is the gateway's configuration.
type Config struct {
	pkgconfig.Common

	// Service: GATEWAY_METRICS_LISTEN, GATEWAY_DRAIN_DELAY, GATEWAY_SHUTDOWN_TIMEOUT.
	pkgconfig.Service `envPrefix:"GATEWAY_"`

	Listen       string `env:"GATEWAY_LISTEN" envDefault:"127.0.0.1:8000"`
	RedisURL     string `env:"GATEWAY_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0" secret:"true"`
	AgentdAddr   string `env:"AGENTD_ADDR" envDefault:"127.0.0.1:8101"`
	SandboxdAddr string `env:"SANDBOXD_ADDR" envDefault:"127.0.0.1:8201"`
	PreviewURL   string `env:"SANDBOXD_PREVIEW_URL" envDefault:"http://127.0.0.1:8202"`
	PublicURL    string `env:"MGX_PUBLIC_URL" envDefault:"http://localhost:8000"`

	// ConsoleDir is the built web console (make build → bin/console). Empty: bin/console next to the
	// gateway binary when it holds a build, else no console; "off" turns it off.
	ConsoleDir string `env:"GATEWAY_CONSOLE_DIR"`

	CORSOrigins []string `env:"GATEWAY_CORS_ORIGINS" envDefault:"http://localhost:3000" envSeparator:","`
	// TrustedProxies are the CIDRs of load balancers in front of the
	// gateway; the client address is then taken from X-Forwarded-For (the
	// right-most hop they did not add). Empty: the TCP peer is the client.
	TrustedProxies []string `env:"GATEWAY_TRUSTED_PROXIES" envSeparator:","`

	// JWTSecret signs access tokens. Empty means a random secret per
	// process: fine for one local gateway, but tokens then die with it and
	// replicas do not accept each other's.
	JWTSecret      string        `env:"GATEWAY_JWT_SECRET" secret:"true"`
	AccessTTL      time.Duration `env:"GATEWAY_ACCESS_TOKEN_TTL" envDefault:"15m"`
	RefreshTTL     time.Duration `env:"GATEWAY_REFRESH_TOKEN_TTL" envDefault:"720h"`
	OperatorEmails []string      `env:"GATEWAY_OPERATOR_EMAILS" envSeparator:","`
	DemoEmail      string        `env:"MGX_DEMO_EMAIL"`
	DemoPassword   string        `env:"MGX_DEMO_PASSWORD" secret:"true"`

	// RefreshGrace: a refresh token presented again this soon after its rotation gets the pair the
	// rotation issued (concurrent refreshes from several tabs, a retry after a lost answer) instead
	// of counting as reuse, which revokes the login. 0 turns the grace off.
	RefreshGrace time.Duration `env:"GATEWAY_REFRESH_REUSE_GRACE" envDefault:"10s"`
	// RevocationCacheTTL: how long a replica trusts that an access token is not revoked (logout)
	// before asking Redis again. A logout through another replica takes effect here within it.
	RevocationCacheTTL time.Duration `env:"GATEWAY_REVOCATION_CACHE_TTL" envDefault:"2s"`

	LoginMaxFailures   int           `env:"GATEWAY_LOGIN_MAX_FAILURES" envDefault:"5"`
	LoginMaxFailuresIP int           `env:"GATEWAY_LOGIN_MAX_FAILURES_IP" envDefault:"50"`
	LoginFailureWindow time.Duration `env:"GATEWAY_LOGIN_FAILURE_WINDOW" envDefault:"15m"`

	RateLimit  int           `env:"GATEWAY_RATE_LIMIT" envDefault:"600"`
	RateWindow time.Duration `env:"GATEWAY_RATE_WINDOW" envDefault:"1m"`
	// RateSync is how often hit counts are pushed to Redis; a subject may
	// overshoot its limit by what it sends in one interval.
	RateSync time.Duration `env:"GATEWAY_RATE_SYNC_INTERVAL" envDefault:"25ms"`

	MaxBodyBytes int64 `env:"GATEWAY_MAX_BODY_BYTES" envDefault:"1048576"`
	// ReadHeaderTimeout bounds receiving a request's headers, ReadBodyTimeout its body (from the
	// end of its headers). Neither limits how long a response may stream.
	ReadHeaderTimeout time.Duration `env:"GATEWAY_READ_HEADER_TIMEOUT" envDefault:"10s"`
	ReadBodyTimeout   time.Duration `env:"GATEWAY_READ_BODY_TIMEOUT" envDefault:"30s"`
	// MaxAnonymousConns caps the connections that have not presented a valid credential yet; past
	// it the oldest of them is closed. Signed-in users' connections are not counted. 0: no cap.
	MaxAnonymousConns int           `env:"GATEWAY_MAX_ANONYMOUS_CONNS" envDefault:"256"`
	UpstreamTimeout   time.Duration `env:"GATEWAY_UPSTREAM_TIMEOUT" envDefault:"30s"`
	// ProvisionTimeout bounds calls that create a sandbox (POST /api/sessions,
	// /api/sandbox/launch).
	ProvisionTimeout time.Duration `env:"GATEWAY_PROVISION_TIMEOUT" envDefault:"120s"`
	// ExecCeiling bounds a unary exec (POST /api/sandbox/exec). The command's own timeout is
	// sandboxd's to default and cap (SANDBOX_EXEC_TIMEOUT, SANDBOX_EXEC_MAX_TIMEOUT), and sandboxd
	// answers its expiry (408, the process killed) itself; this only has to exceed sandboxd's cap,
	// so the default is that cap's default plus a grace.
	ExecCeiling time.Duration `env:"GATEWAY_EXEC_CEILING" envDefault:"3615s"`

	// MaxStreamsPerUser bounds a user's open streams across replicas: event streams (WebSocket,
	// SSE), followed process logs and streamed commands together.
	MaxStreamsPerUser int           `env:"GATEWAY_MAX_STREAMS_PER_USER" envDefault:"16"`
	StreamBuffer      int           `env:"GATEWAY_STREAM_BUFFER" envDefault:"1024"`
	PingInterval      time.Duration `env:"GATEWAY_PING_INTERVAL" envDefault:"20s"`
}

// Validate implements pkgconfig.Validator.
func (c Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if err := c.Service.Validate("GATEWAY_"); err != nil {
		return err
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		return fmt.Errorf("GATEWAY_JWT_SECRET: %w", ErrShortJWTSecret)
	}
	for name, raw := range map[string]string{"SANDBOXD_PREVIEW_URL": c.PreviewURL, "MGX_PUBLIC_URL": c.PublicURL} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s=%q: %w", name, raw, ErrBadURL)
		}
	}
	for name, d := range map[string]time.Duration{
		"GATEWAY_ACCESS_TOKEN_TTL": c.AccessTTL, "GATEWAY_REFRESH_TOKEN_TTL": c.RefreshTTL,
		"GATEWAY_LOGIN_FAILURE_WINDOW": c.LoginFailureWindow, "GATEWAY_RATE_WINDOW": c.RateWindow,
		"GATEWAY_RATE_SYNC_INTERVAL": c.RateSync,
		"GATEWAY_UPSTREAM_TIMEOUT":   c.UpstreamTimeout, "GATEWAY_PROVISION_TIMEOUT": c.ProvisionTimeout, "GATEWAY_PING_INTERVAL": c.PingInterval,
		"GATEWAY_READ_HEADER_TIMEOUT": c.ReadHeaderTimeout, "GATEWAY_READ_BODY_TIMEOUT": c.ReadBodyTimeout,
		"GATEWAY_EXEC_CEILING": c.ExecCeiling,
	} {
		if d <= 0 {
			return fmt.Errorf("%s=%s: %w", name, d, ErrNotPositive)
		}
	}
	for name, d := range map[string]time.Duration{
		"GATEWAY_REFRESH_REUSE_GRACE": c.RefreshGrace, "GATEWAY_REVOCATION_CACHE_TTL": c.RevocationCacheTTL,
	} {
		if d < 0 {
			return fmt.Errorf("%s=%s: %w", name, d, ErrNegative)
		}
	}
	if c.RefreshGrace > time.Minute {
		return fmt.Errorf("GATEWAY_REFRESH_REUSE_GRACE=%s: %w", c.RefreshGrace, ErrGraceTooLong)
	}
	if c.MaxAnonymousConns < 0 {
		return fmt.Errorf("GATEWAY_MAX_ANONYMOUS_CONNS=%d: %w", c.MaxAnonymousConns, ErrNegative)
	}
	if c.MaxBodyBytes <= 0 || c.StreamBuffer <= 0 || c.MaxStreamsPerUser <= 0 {
		return fmt.Errorf("GATEWAY_MAX_BODY_BYTES, GATEWAY_STREAM_BUFFER, GATEWAY_MAX_STREAMS_PER_USER: %w", ErrNotPositive)
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil {
			return fmt.Errorf("GATEWAY_TRUSTED_PROXIES=%q: %w", p, ErrBadCIDR)
		}
	}
	if c.DemoEmail != "" && len(c.DemoPassword) < 8 {
		return ErrDemoPassword
	}
	return nil
}

// ServerName is the public host:port of MGX_PUBLIC_URL (the scheme's port when it names none): the
// server address HTTP metrics are labelled with.
func (c Config) ServerName() string {
	u, err := url.Parse(c.PublicURL)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// PreviewHostSuffix is what the host names of preview origins end with (see pkg/previewhost):
// ".preview.localhost" for http://localhost:8000 (p5173-<capability>.preview.localhost:8000), also
// for a loopback IP; "" when the public host is another IP address, which has no preview origins.
func (c Config) PreviewHostSuffix() string {
	b, err := previewhost.FromPublicURL(c.PublicURL)
	if err != nil {
		return ""
	}
	return b.Suffix()
}
