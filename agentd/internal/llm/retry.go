package llm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy retries failed model turns. A turn is safe to repeat: nothing the model asked for is
// executed before its answer is complete. Retries live here rather than in the SDKs (which are set to
// none) so that every attempt is visible to the caller, a stream broken half-way is retried like a
// refused request, and one budget bounds both.
type RetryPolicy struct {
	// MaxRetries bounds the attempts after the first.
	MaxRetries int
	// BaseDelay is the first backoff; each retry doubles it, up to MaxDelay, with jitter.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter: a provider asking to wait longer than this (a spent daily quota) is not
	// waited for; the turn fails at once and says why.
	MaxRetryAfter time.Duration
}

// Retry describes an attempt that failed and is about to be repeated.
type Retry struct {
	Attempt     int // the attempt that failed, from 1
	MaxAttempts int
	Delay       time.Duration
	Err         *Error
	// Usage is what the failed attempt consumed; providers bill broken streams too.
	Usage Usage
}

func (p RetryPolicy) backoff(retry int) time.Duration {
	base, ceiling := p.BaseDelay, p.MaxDelay
	if base <= 0 {
		base = time.Second
	}
	if ceiling <= 0 {
		ceiling = 30 * time.Second
	}
	d := base << min(retry, 20)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	// Equal jitter: half fixed, half random, so replicas hit by the same outage spread out.
	return d/2 + rand.N(d/2+1)
}

// Complete runs req on prov, retrying what can be retried. onRetry (optional) is called before each
// wait. The returned Response's Usage includes every attempt, failed ones too, and so does the
// Response returned with an error.
func (p RetryPolicy) Complete(ctx context.Context, prov Provider, req Request, s Stream, onRetry func(Retry)) (Response, error) {
	var spent Usage
	attempts := p.MaxRetries + 1
	for attempt := 1; ; attempt++ {
		resp, err := prov.Complete(ctx, req, s)
		spent = spent.Add(resp.Usage)
		if err == nil {
			resp.Usage = spent
			return resp, nil
		}
		failed := Response{Usage: spent, Model: resp.Model}
		e, ok := AsError(err)
		if ctx.Err() != nil || !ok || !e.Retryable || attempt >= attempts {
			return failed, err
		}
		delay := p.backoff(attempt - 1)
		if e.RetryAfter > 0 {
			if p.MaxRetryAfter > 0 && e.RetryAfter > p.MaxRetryAfter {
				return failed, fmt.Errorf("%w (the provider asks to retry after %s, longer than agentd waits)", err, e.RetryAfter.Round(time.Second))
			}
			delay = e.RetryAfter
		}
		if onRetry != nil {
			onRetry(Retry{Attempt: attempt, MaxAttempts: attempts, Delay: delay, Err: e, Usage: resp.Usage})
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return failed, ctx.Err()
		case <-t.C:
		}
	}
}
