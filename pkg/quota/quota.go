// Package quota bounds how many of one user's long-lived things exist at once across every replica
// of a service: open streams in the gateway, running commands in sandboxd. A quota is a counting
// semaphore in Redis whose slots are leases. A holder renews its lease while it runs and gives the
// slot back when it ends; a replica that dies holding slots frees them when their leases lapse, so
// a crash can never lock a user out for longer than one lease.
//
// The caller builds the key (every service keeps its keys in its own keys.go); one key must always be
// used with one Semaphore, so that every slot of it has the same lease.
package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrFull says every slot of the quota is held.
var ErrFull = errors.New("quota: every slot is held")

// Options configures a Semaphore.
type Options struct {
	// Lease is how long a slot stays held without renewal: the longest a crashed holder keeps a
	// slot. Renewal happens every Lease/3. Zero means 30 s.
	Lease time.Duration
	// Logger receives renewal failures (a renewal that fails keeps the slot until its lease ends).
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Replicas' clocks must agree to well within a lease.
	Now func() time.Time
}

// Semaphore hands out slots of per-key quotas kept in Redis.
type Semaphore struct {
	rdb   redis.UniversalClient
	lease time.Duration
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Semaphore over rdb.
func New(rdb redis.UniversalClient, o Options) *Semaphore {
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Semaphore{rdb: rdb, lease: o.Lease, log: o.Logger, now: o.Now}
}

// acquire takes a slot when one is free, after dropping the slots whose lease has lapsed.
//
//	KEYS[1] the quota: a sorted set of holder → lease end (unix ms)
//	ARGV[1] now (unix ms)
//	ARGV[2] the number of slots
//	ARGV[3] the holder
//	ARGV[4] the lease (ms)
//	returns 1 when the holder got a slot, 0 when every slot is held
//
// The key expires one lease after the last acquisition or renewal: every slot's lease ends by
// then, so a quota nobody holds leaves nothing behind.
var acquire = redis.NewScript(`
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

func ms(t time.Time) int64 { return t.UnixMilli() }

// Acquire takes one of max slots of key, or fails with ErrFull. The slot stays held, its lease
// renewed in the background, until Release is called or ctx ends, whichever comes first.
func (s *Semaphore) Acquire(ctx context.Context, key string, max int) (*Slot, error) {
	holder := holderID()
	ok, err := acquire.Run(ctx, s.rdb, []string{key}, ms(s.now()), max, holder, s.lease.Milliseconds()).Bool()
	if err != nil {
		return nil, fmt.Errorf("quota: acquire %s: %w", key, err)
	}
	if !ok {
		return nil, ErrFull
	}
	return s.hold(ctx, key, holder), nil
}

// ErrWaited says AcquireWait gave up: every slot stayed held for as long as it was to wait.
var ErrWaited = errors.New("quota: every slot stayed held")

// AcquireWait is Acquire that waits, polling, while every slot is held, for at most wait (or until
// ctx ends). With max 1 it is a mutex shared by the replicas, whose holder may die without unlocking
// it for longer than one lease. The slot it takes is held as Acquire's: until Release or the end of
// ctx. The bound on the wait is a separate argument because a context bounding it would also end
// the hold: a lock taken under a timeout context that its caller cancels on return is released the
// moment it is handed out.
func (s *Semaphore) AcquireWait(ctx context.Context, key string, max int, wait time.Duration) (*Slot, error) {
	giveUp := time.NewTimer(wait)
	defer giveUp.Stop()
	poll := 10 * time.Millisecond
	for {
		slot, err := s.Acquire(ctx, key, max)
		if !errors.Is(err, ErrFull) {
			return slot, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("quota: wait for %s: %w", key, context.Cause(ctx))
		case <-giveUp.C:
			return nil, fmt.Errorf("%w: %s for %s", ErrWaited, key, wait)
		case <-time.After(poll):
		}
		poll = min(2*poll, 200*time.Millisecond)
	}
}

// Held counts the slots of key whose lease has not lapsed.
func (s *Semaphore) Held(ctx context.Context, key string) (int, error) {
	n, err := s.rdb.ZCount(ctx, key, fmt.Sprintf("(%d", ms(s.now())), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("quota: count %s: %w", key, err)
	}
	return int(n), nil
}

// Slot is a held slot of a quota.
type Slot struct {
	s      *Semaphore
	key    string
	holder string
	stop   context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (s *Semaphore) hold(ctx context.Context, key, holder string) *Slot {
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	slot := &Slot{s: s, key: key, holder: holder, stop: stop, done: make(chan struct{})}
	go slot.renew(ctx, rctx)
	return slot
}

// renew extends the lease every third of it until the slot is released or the holder's context
// ends, which releases it.
func (sl *Slot) renew(holderCtx, ctx context.Context) {
	defer close(sl.done)
	t := time.NewTicker(sl.s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-holderCtx.Done():
			// Released from here, not by the caller: the slot must not outlive its holder's work.
			go sl.Release()
			return
		case <-t.C:
			// A plain ZADD, not "only if present": a slot whose lease lapsed during a Redis outage
			// is held again, since its holder still runs.
			_, err := sl.s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.ZAdd(ctx, sl.key, redis.Z{Score: float64(ms(sl.s.now().Add(sl.s.lease))), Member: sl.holder})
				p.PExpire(ctx, sl.key, sl.s.lease)
				return nil
			})
			if err != nil && ctx.Err() == nil {
				sl.s.log.WarnContext(ctx, "quota: renew a slot's lease", "key", sl.key, "err", err)
			}
		}
	}
}

// Release gives the slot back. It is safe to call more than once and from any goroutine.
func (sl *Slot) Release() {
	sl.once.Do(func() {
		// Renewal stops first, so that no late renewal brings the slot back after it is removed.
		sl.stop()
		<-sl.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sl.s.rdb.ZRem(ctx, sl.key, sl.holder).Err(); err != nil {
			// The slot stays taken until its lease lapses.
			sl.s.log.Warn("quota: release a slot", "key", sl.key, "err", err)
		}
	})
}

func holderID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
