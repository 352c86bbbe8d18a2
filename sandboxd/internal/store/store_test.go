package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

func newStore(t *testing.T, url string) *Store {
	t.Helper()
	rdb, err := redisclient.New(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return New(rdb)
}

func running(t *testing.T, ctx context.Context, s *Store, sid, owner string) {
	t.Helper()
	res, err := s.BeginCreate(ctx, sid, owner, "creator", time.Minute)
	require.NoError(t, err)
	require.Equal(t, CreateYours, res)
	require.NoError(t, s.FinishCreate(ctx, "creator", Record{SessionID: sid, InstanceID: "i-" + sid, InstanceName: "n", Driver: "local"}))
}

func TestStore(t *testing.T) {
	// Every script runs on a single node and on a cluster: the keys of one
	// script must share a hash slot.
	for name, url := range map[string]func(testing.TB) string{"single": stacktest.SharedRedis, "cluster": stacktest.RedisCluster} {
		t.Run(name, func(t *testing.T) { storeSuite(t, newStore(t, url(t))) })
	}
}

func storeSuite(t *testing.T, s *Store) {
	ctx := t.Context()

	t.Run("owner is recorded once", func(t *testing.T) {
		sid := uuid.NewString()
		running(t, ctx, s, sid, "alice")
		res, err := s.BeginCreate(ctx, sid, "bob", "x", time.Minute)
		require.NoError(t, err)
		require.Equal(t, CreateOwnedByOther, res)
		res, err = s.BeginCreate(ctx, sid, "alice", "x", time.Minute)
		require.NoError(t, err)
		require.Equal(t, StateRunning, res)
		o, err := s.Owner(ctx, sid)
		require.NoError(t, err)
		require.Equal(t, "alice", o)
		recs, err := s.ByOwner(ctx, "alice")
		require.NoError(t, err)
		require.Len(t, recs, 1)
	})

	t.Run("concurrent destroy claims: exactly one wins", func(t *testing.T) {
		sid := uuid.NewString()
		running(t, ctx, s, sid, "alice")
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := s.ClaimDestroy(ctx, sid, uuid.NewString(), time.Minute, time.Now().Add(time.Hour))
				require.NoError(t, err)
				if n == Claimed {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 1, wins.Load())
	})

	t.Run("a running exec blocks the reaper until its lease lapses", func(t *testing.T) {
		sid := uuid.NewString()
		running(t, ctx, s, sid, "alice")
		require.NoError(t, s.BeginExec(ctx, sid, "e1", 300*time.Millisecond))
		future := time.Now().Add(time.Hour)
		n, err := s.ClaimDestroy(ctx, sid, "reaper", time.Minute, future)
		require.NoError(t, err)
		require.Equal(t, ClaimBusy, n)
		require.NoError(t, s.EndExec(ctx, sid, "e1"))
		// Activity since the cutoff keeps it too.
		n, err = s.ClaimDestroy(ctx, sid, "reaper", time.Minute, time.Now().Add(-time.Minute))
		require.NoError(t, err)
		require.Equal(t, ClaimActive, n)
		// A lease whose holder died lapses by itself.
		require.NoError(t, s.BeginExec(ctx, sid, "e2", 50*time.Millisecond))
		time.Sleep(100 * time.Millisecond)
		n, err = s.ClaimDestroy(ctx, sid, "reaper", time.Minute, future)
		require.NoError(t, err)
		require.Equal(t, Claimed, n)
		// Once claimed, no exec may start.
		require.ErrorIs(t, s.BeginExec(ctx, sid, "e3", time.Minute), ErrNotHeld)
		r, err := s.Get(ctx, sid)
		require.NoError(t, err)
		require.ErrorIs(t, s.Delete(ctx, r, "someone-else"), ErrNotHeld)
		require.NoError(t, s.Delete(ctx, r, "reaper"))
		_, err = s.Get(ctx, sid)
		require.ErrorIs(t, err, ErrNotFound)
		ids, err := s.IdleBefore(ctx, future, 100)
		require.NoError(t, err)
		require.NotContains(t, ids, sid)
	})

	t.Run("a creation destroyed midway cannot finish", func(t *testing.T) {
		sid := uuid.NewString()
		res, err := s.BeginCreate(ctx, sid, "alice", "creator", time.Minute)
		require.NoError(t, err)
		require.Equal(t, CreateYours, res)
		n, err := s.ClaimDestroy(ctx, sid, "destroyer", time.Minute, time.Time{})
		require.NoError(t, err)
		require.Equal(t, Claimed, n)
		require.ErrorIs(t, s.FinishCreate(ctx, "creator", Record{SessionID: sid}), ErrNotHeld)
	})

	t.Run("an abandoned creation is taken over after its lease", func(t *testing.T) {
		sid := uuid.NewString()
		_, err := s.BeginCreate(ctx, sid, "alice", "dead", 50*time.Millisecond)
		require.NoError(t, err)
		res, err := s.BeginCreate(ctx, sid, "alice", "live", time.Minute)
		require.NoError(t, err)
		require.Equal(t, StateCreating, res)
		time.Sleep(100 * time.Millisecond)
		res, err = s.BeginCreate(ctx, sid, "alice", "live", time.Minute)
		require.NoError(t, err)
		require.Equal(t, CreateYours, res)
		require.ErrorIs(t, s.FinishCreate(ctx, "dead", Record{SessionID: sid}), ErrNotHeld)
		require.NoError(t, s.FinishCreate(ctx, "live", Record{SessionID: sid}))
	})

	t.Run("touch never resurrects a deleted record", func(t *testing.T) {
		require.ErrorIs(t, s.Touch(ctx, uuid.NewString()), ErrNotFound)
	})

	t.Run("pool claims are exclusive", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			require.NoError(t, s.PoolAdd(ctx, "docker", driver.Instance{ID: uuid.NewString()}))
		}
		seen := sync.Map{}
		var wg sync.WaitGroup
		var got atomic.Int32
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, ok, err := s.PoolClaim(ctx, "docker")
				if err == nil && ok {
					_, dup := seen.LoadOrStore(e.ID, true)
					require.False(t, dup)
					got.Add(1)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 5, got.Load())
	})

	t.Run("preview grants: the running incarnation and the rotation mark", func(t *testing.T) {
		sid := uuid.NewString()
		g, err := s.PreviewGrant(ctx, sid)
		require.NoError(t, err)
		require.Equal(t, PreviewGrant{}, g, "no sandbox, no grant")

		running(t, ctx, s, sid, "alice")
		g, err = s.PreviewGrant(ctx, sid)
		require.NoError(t, err)
		require.Regexp(t, "^i-"+sid+"@[0-9]+$", g.Incarnation)
		require.True(t, g.RevokedThrough.IsZero())

		through := time.Now().Add(time.Hour).Truncate(time.Second)
		mark, err := s.RevokePreviews(ctx, sid, through, time.Minute)
		require.NoError(t, err)
		require.Equal(t, through.Unix(), mark.Unix())
		// The same mark again moves it a second on, so that it still revokes what the first
		// rotation's successors handed out.
		mark, err = s.RevokePreviews(ctx, sid, through, time.Minute)
		require.NoError(t, err)
		require.Equal(t, through.Unix()+1, mark.Unix())
		g, err = s.PreviewGrant(ctx, sid)
		require.NoError(t, err)
		require.Equal(t, through.Unix()+1, g.RevokedThrough.Unix())
	})
}
