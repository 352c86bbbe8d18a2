// Package ratelimit counts requests per subject (a user id, or a client
// address for anonymous calls) in Redis, so the limit holds across gateway
// replicas.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/gateway/internal/store"
)

// Limiter is a fixed-window counter: at most Limit requests per Window.
// Fixed windows allow a burst of 2×Limit across a boundary; for a per-user
// abuse limit that is acceptable and costs one round trip per request.
type Limiter struct {
	rdb    redis.UniversalClient
	limit  int64
	window time.Duration
	now    func() time.Time
}

// New returns a limiter; limit <= 0 disables it.
func New(rdb redis.UniversalClient, limit int, window time.Duration) *Limiter {
	return &Limiter{rdb: rdb, limit: int64(limit), window: window, now: time.Now}
}

// hit counts one request.
//
//	KEYS[1] the window's counter (store.KeyRateLimit)
//	ARGV[1] the window length in ms; the key lives one window past its end
//	returns the count including this request
var hit = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1] * 2)
end
return n
`)

// Decision is the outcome of Allow.
type Decision struct {
	Allowed    bool
	Remaining  int64
	RetryAfter time.Duration
}

// Allow counts a request of subject and says whether it is within the limit.
func (l *Limiter) Allow(ctx context.Context, subject string) (Decision, error) {
	if l.limit <= 0 {
		return Decision{Allowed: true}, nil
	}
	now := l.now()
	win := l.window.Milliseconds()
	start := now.UnixMilli() / win * win
	n, err := hit.Run(ctx, l.rdb, []string{store.KeyRateLimit(subject, start)}, win).Int64()
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit: %w", err)
	}
	if n > l.limit {
		retry := time.Duration(start+win-now.UnixMilli()) * time.Millisecond
		return Decision{RetryAfter: max(retry, time.Second)}, nil
	}
	return Decision{Allowed: true, Remaining: l.limit - n}, nil
}
