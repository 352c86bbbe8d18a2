package quota_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/quota"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

func client(t *testing.T) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(stacktest.SharedRedis(t))
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestSlotsAreBounded(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	// Two replicas of a service share the quota through Redis.
	a := quota.New(rdb, quota.Options{Lease: time.Second})
	b := quota.New(rdb, quota.Options{Lease: time.Second})
	ctx := t.Context()

	s1, err := a.Acquire(ctx, "q:user", 2)
	require.NoError(t, err)
	s2, err := b.Acquire(ctx, "q:user", 2)
	require.NoError(t, err)
	_, err = a.Acquire(ctx, "q:user", 2)
	require.ErrorIs(t, err, quota.ErrFull)
	_, err = b.Acquire(ctx, "q:other-user", 2)
	require.NoError(t, err, "quotas are per key")

	s1.Release()
	s1.Release() // idempotent
	s3, err := b.Acquire(ctx, "q:user", 2)
	require.NoError(t, err, "a released slot is free again")
	n, err := a.Held(ctx, "q:user")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	s2.Release()
	s3.Release()
	n, err = a.Held(ctx, "q:user")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestConcurrentAcquireNeverOvershoots(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	s := quota.New(rdb, quota.Options{Lease: 5 * time.Second})
	var got atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := s.Acquire(t.Context(), "q:race", 7); err == nil {
				got.Add(1)
			} else {
				require.ErrorIs(t, err, quota.ErrFull)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 7, got.Load())
}

func TestHolderContextEndReleases(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	s := quota.New(rdb, quota.Options{Lease: 5 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	_, err := s.Acquire(ctx, "q:ctx", 1)
	require.NoError(t, err)
	_, err = s.Acquire(t.Context(), "q:ctx", 1)
	require.ErrorIs(t, err, quota.ErrFull)
	cancel()
	stacktest.Eventually(t, 5*time.Second, func() bool {
		n, err := s.Held(t.Context(), "q:ctx")
		return err == nil && n == 0
	}, "the slot of a holder whose context ended is released")
}

// A slot is kept while its holder runs, however long, and freed one lease after its holder died.
func TestLeases(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	const lease = 300 * time.Millisecond
	live := quota.New(rdb, quota.Options{Lease: lease})
	slot, err := live.Acquire(t.Context(), "q:lease", 1)
	require.NoError(t, err)
	defer slot.Release()
	time.Sleep(4 * lease) // several leases: only renewal keeps the slot
	_, err = live.Acquire(t.Context(), "q:lease", 1)
	require.ErrorIs(t, err, quota.ErrFull, "a renewed slot stays held past its first lease")

	// A holder on a replica that died: its slot was taken, and nobody renews it.
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	crashed := quota.New(rdb, quota.Options{Lease: time.Hour, Now: clock})
	ctx, abandon := context.WithCancel(context.WithoutCancel(t.Context()))
	_, err = crashed.Acquire(ctx, "q:crash", 1)
	require.NoError(t, err)
	// Its renewal would come only after a third of the hour, and it never releases: as after a crash.
	other := quota.New(rdb, quota.Options{Lease: time.Hour, Now: clock})
	_, err = other.Acquire(t.Context(), "q:crash", 1)
	require.ErrorIs(t, err, quota.ErrFull)
	now.Add((time.Hour + time.Second).Milliseconds())
	s, err := other.Acquire(t.Context(), "q:crash", 1)
	require.NoError(t, err, "a lapsed lease frees its slot")
	s.Release()
	abandon()
}

func TestAcquireWait(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	s := quota.New(rdb, quota.Options{Lease: 5 * time.Second})
	held, err := s.Acquire(t.Context(), "q:mutex", 1)
	require.NoError(t, err)
	go func() {
		time.Sleep(200 * time.Millisecond)
		held.Release()
	}()
	start := time.Now()
	next, err := s.AcquireWait(t.Context(), "q:mutex", 1, time.Minute)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "it waited for the release")
	// The slot is held past the wait: only Release or the holder's context ends it.
	time.Sleep(100 * time.Millisecond)
	n, err := s.Held(t.Context(), "q:mutex")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	next.Release()

	blocker, err := s.Acquire(t.Context(), "q:mutex", 1)
	require.NoError(t, err)
	defer blocker.Release()
	_, err = s.AcquireWait(t.Context(), "q:mutex", 1, 100*time.Millisecond)
	require.ErrorIs(t, err, quota.ErrWaited)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = s.AcquireWait(ctx, "q:mutex", 1, time.Minute)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
