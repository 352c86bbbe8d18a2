// Package ratelimit limits requests per subject (a user id, or a client
// address for anonymous calls) across gateway replicas, with counts kept in
// Redis.
//
// The request path never waits for Redis: a Redis round trip per request
// would cost more than the rest of the gateway together (measured with
// gateway-bench). Instead each replica counts hits locally and pushes them
// to Redis in one pipelined batch every SyncInterval; when Redis reports a
// subject over its limit for the current window, every replica that pushed
// for it blocks the subject locally until the window ends. The price is a
// bounded overshoot: a subject may exceed its limit by what it sends within
// one sync interval (plus one round trip), per replica.
package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/gateway/internal/store"
)

// Limiter is a fixed-window limit: Limit requests per Window per subject.
type Limiter struct {
	rdb    redis.UniversalClient
	limit  int64
	window time.Duration
	sync   time.Duration
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	pending map[string]int64     // hits not yet pushed to Redis
	blocked map[string]time.Time // subject → end of the window it exhausted
}

// New returns a limiter; limit <= 0 disables it. Call Run to sync it.
func New(rdb redis.UniversalClient, limit int, window, syncInterval time.Duration, logger *slog.Logger) *Limiter {
	return &Limiter{
		rdb: rdb, limit: int64(limit), window: window, sync: syncInterval, logger: logger, now: time.Now,
		pending: map[string]int64{}, blocked: map[string]time.Time{},
	}
}

// Decision is the outcome of Allow.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration
}

// Allow counts a request of subject and says whether it may proceed. It
// never blocks on Redis.
func (l *Limiter) Allow(subject string) Decision {
	if l.limit <= 0 {
		return Decision{Allowed: true}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if until, ok := l.blocked[subject]; ok {
		if now.Before(until) {
			return Decision{RetryAfter: until.Sub(now)}
		}
		delete(l.blocked, subject)
	}
	l.pending[subject]++
	return Decision{Allowed: true}
}

// Run syncs with Redis every sync interval until ctx ends, then once more.
func (l *Limiter) Run(ctx context.Context) {
	if l.limit <= 0 {
		return
	}
	t := time.NewTicker(l.sync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Sync(context.WithoutCancel(ctx))
			return
		case <-t.C:
			l.Sync(ctx)
		}
	}
}

// hit adds a replica's hits to a window's counter.
//
//	KEYS[1] the window's counter (store.KeyRateLimit)
//	ARGV[1] the window length in ms; the key lives one window past its end
//	ARGV[2] hits to add
//	returns the window's count including them
//
// It is sent with EVAL, not EVALSHA: in a pipeline a NOSCRIPT reply (after
// a Redis restart or failover) cannot be retried, and one script body per
// sync interval costs nothing.
const hit = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1] * 2)
end
return n
`

// Sync pushes the pending hits in one pipeline and blocks the subjects that
// are over the limit. Redis errors are logged and the hits dropped: the
// limiter fails open, as abuse protection must not take the API down with
// Redis.
func (l *Limiter) Sync(ctx context.Context) {
	l.mu.Lock()
	pending := l.pending
	l.pending = make(map[string]int64, len(pending))
	l.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	now := l.now()
	win := l.window.Milliseconds()
	start := now.UnixMilli() / win * win
	end := time.UnixMilli(start + win)

	pipe := l.rdb.Pipeline()
	cmds := make(map[string]*redis.Cmd, len(pending))
	for subject, n := range pending {
		cmds[subject] = pipe.Eval(ctx, hit, []string{store.KeyRateLimit(subject, start)}, win, n)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		l.logger.WarnContext(ctx, "rate limiter sync failed", "err", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for subject, cmd := range cmds {
		// At the limit already blocks: the next request would exceed it.
		if n, err := cmd.Int64(); err == nil && n >= l.limit {
			l.blocked[subject] = end
		}
	}
	for subject, until := range l.blocked {
		if !now.Before(until) {
			delete(l.blocked, subject)
		}
	}
}
