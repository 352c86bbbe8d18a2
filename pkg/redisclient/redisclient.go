// Package redisclient opens the Redis connection of a service from one URL
// (MGX_REDIS_URL in the services), whatever the deployment: a single node, a
// Sentinel-managed primary or a cluster. Stores take the returned
// redis.UniversalClient and do not care which it is.
//
// Supported URLs:
//
//	redis://[user:password@]host:port/<db>            single node
//	rediss://…                                         same, over TLS
//	unix://[user:password@]/path/redis.sock?db=<db>    single node, unix socket
//	redis+sentinel://[user:password@]h1:26379,h2:26379/<db>?master=<name>
//	redis+cluster://[user:password@]h1:7000,h2:7001
//
// Every form accepts go-redis's URL parameters (dial_timeout, pool_size, …);
// the sentinel form adds master (required), sentinel_username and
// sentinel_password.
package redisclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mgx-ai/mgx/pkg/internal/redact"
)

// DefaultPingTimeout bounds the connectivity check in New.
const DefaultPingTimeout = 5 * time.Second

type settings struct {
	pingTimeout time.Duration
	clientName  string
	tp          trace.TracerProvider
	mp          metric.MeterProvider
}

// Option customises New.
type Option func(*settings)

// WithPingTimeout bounds the start-up PING (default DefaultPingTimeout).
func WithPingTimeout(d time.Duration) Option {
	return func(s *settings) { s.pingTimeout = d }
}

// WithClientName sets CLIENT SETNAME on every connection, so CLIENT LIST on
// the server shows which service holds which connections.
func WithClientName(name string) Option {
	return func(s *settings) { s.clientName = name }
}

// WithTracerProvider and WithMeterProvider replace the global OpenTelemetry
// providers (which telemetry.Setup installs) for this client.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *settings) { s.tp = tp }
}

// WithMeterProvider: see WithTracerProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(s *settings) { s.mp = mp }
}

// New connects to the Redis named by rawURL, instruments the client with
// OpenTelemetry tracing and metrics, and checks with a PING that the server
// answers, so a wrong URL stops the service at start instead of failing its
// first request. Errors name the URL with its passwords masked.
func New(ctx context.Context, rawURL string, opts ...Option) (redis.UniversalClient, error) {
	s := settings{pingTimeout: DefaultPingTimeout}
	for _, o := range opts {
		o(&s)
	}
	shown := Redact(rawURL)

	p, err := parseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisclient: %s: %w", shown, err)
	}

	var rdb redis.UniversalClient
	switch p.mode {
	case ModeSingle:
		if p.single.ClientName == "" { // a client_name in the URL wins
			p.single.ClientName = s.clientName
		}
		rdb = redis.NewClient(p.single)
	case ModeSentinel:
		if p.failover.ClientName == "" { // a client_name in the URL wins
			p.failover.ClientName = s.clientName
		}
		rdb = redis.NewFailoverClient(p.failover)
	case ModeCluster:
		if p.cluster.ClientName == "" { // a client_name in the URL wins
			p.cluster.ClientName = s.clientName
		}
		rdb = redis.NewClusterClient(p.cluster)
	}

	if err := instrument(rdb, s); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redisclient: %s: instrument: %w", shown, err)
	}

	pingCtx, cancel := context.WithTimeout(ctx, s.pingTimeout)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redisclient: ping %s (%s): %w", shown, p.mode, err)
	}
	return rdb, nil
}

func instrument(rdb redis.UniversalClient, s settings) error {
	// Statements stay out of spans: values are user data (messages, file
	// contents) and can be large; the command name is enough to read a
	// trace.
	traceOpts := []redisotel.TracingOption{redisotel.WithDBStatement(false)}
	if s.tp != nil {
		traceOpts = append(traceOpts, redisotel.WithTracerProvider(s.tp))
	}
	var metricOpts []redisotel.MetricsOption
	if s.mp != nil {
		metricOpts = append(metricOpts, redisotel.WithMeterProvider(s.mp))
	}
	return errors.Join(
		redisotel.InstrumentTracing(rdb, traceOpts...),
		redisotel.InstrumentMetrics(rdb, metricOpts...),
	)
}

// ParseMode reports which deployment rawURL names, validating it fully.
// Services use it to log what they connect to before connecting.
func ParseMode(rawURL string) (Mode, error) {
	p, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	return p.mode, nil
}

// Redact returns rawURL with every password masked, for logs and errors.
func Redact(rawURL string) string {
	return redact.URL(rawURL)
}
