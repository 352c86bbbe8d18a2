package store_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/gateway/internal/ratelimit"
	"github.com/mgx-ai/mgx/gateway/internal/store"
	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// TestStore runs every store operation on a single node and on a cluster:
// each Lua script must touch keys of one hash slot only.
func TestStore(t *testing.T) {
	for name, url := range map[string]func(testing.TB) string{"single": stacktest.SharedRedis, "cluster": stacktest.RedisCluster} {
		t.Run(name, func(t *testing.T) {
			rdb, err := redisclient.New(t.Context(), url(t))
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })
			st := store.New(rdb)
			ctx := t.Context()

			u := store.User{ID: "u1", Email: "a@example.com", Name: "A", PasswordHash: "h", Credits: 7, Plan: "free", CreatedAt: time.UnixMilli(1000)}
			require.NoError(t, st.CreateUser(ctx, u))
			require.ErrorIs(t, st.CreateUser(ctx, store.User{ID: "u2", Email: "a@example.com"}), store.ErrEmailTaken)
			got, err := st.UserByEmail(ctx, "a@example.com")
			require.NoError(t, err)
			require.Equal(t, u, got)
			_, err = st.User(ctx, "missing")
			require.ErrorIs(t, err, store.ErrNotFound)

			rt := store.RefreshToken{UserID: "u1", Family: "f1"}
			require.NoError(t, st.SaveRefresh(ctx, "h1", rt, time.Minute))
			_, err = st.RevokeRefresh(ctx, "h1", "someone-else")
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = st.RevokeRefresh(ctx, "h1", "u")
			require.ErrorIs(t, err, store.ErrNotFound, "a prefix of the owner is not the owner")
			got1, err := st.Refresh(ctx, "h1")
			require.NoError(t, err)
			require.Equal(t, rt, got1)
			outcome, got1, _, err := st.RotateRefresh(ctx, "h1", []byte("sealed\x00pair"), time.Minute)
			require.NoError(t, err)
			require.Equal(t, store.Rotated, outcome)
			require.Equal(t, rt, got1)
			outcome, got1, successor, err := st.RotateRefresh(ctx, "h1", []byte("another pair"), time.Minute)
			require.NoError(t, err, "within the grace period a second rotation is a concurrent one")
			require.Equal(t, store.RotatedConcurrently, outcome)
			require.Equal(t, rt, got1)
			require.Equal(t, []byte("sealed\x00pair"), successor, "it gets the first rotation's pair")
			require.NoError(t, st.SaveRefresh(ctx, "h2", rt, time.Minute))
			_, _, _, err = st.RotateRefresh(ctx, "h2", []byte("p"), 0)
			require.NoError(t, err)
			_, got1, _, err = st.RotateRefresh(ctx, "h2", []byte("p"), 0)
			require.ErrorIs(t, err, store.ErrRefreshReused, "without a grace period a second use is reuse")
			require.Equal(t, rt, got1)
			_, _, _, err = st.RotateRefresh(ctx, "unknown", []byte("p"), time.Minute)
			require.ErrorIs(t, err, store.ErrNotFound)
			require.NoError(t, st.DeleteRefresh(ctx, "h2"))
			_, err = st.Refresh(ctx, "h2")
			require.ErrorIs(t, err, store.ErrNotFound)

			revoked, err := st.AccessRevoked(ctx, "jti1", "f1")
			require.NoError(t, err)
			require.False(t, revoked)
			require.NoError(t, st.RevokeAccessToken(ctx, "jti1", time.Now().Add(time.Minute)))
			revoked, err = st.AccessRevoked(ctx, "jti1", "")
			require.NoError(t, err)
			require.True(t, revoked)
			revoked, err = st.FamilyRevoked(ctx, "f1")
			require.NoError(t, err)
			require.False(t, revoked)
			require.NoError(t, st.RevokeFamily(ctx, "f1", time.Minute))
			revoked, err = st.AccessRevoked(ctx, "jti2", "f1")
			require.NoError(t, err)
			require.True(t, revoked, "an access token of a revoked family is revoked")
			revoked, err = st.FamilyRevoked(ctx, "f1")
			require.NoError(t, err)
			require.True(t, revoked)
			got1, err = st.RevokeRefresh(ctx, "h1", "u1")
			require.NoError(t, err)
			require.Equal(t, rt, got1)

			k := store.APIKey{ID: "k1", UserID: "u1", Name: "ci", Prefix: "mgx_", Hash: "x", CreatedAt: time.UnixMilli(5)}
			require.NoError(t, st.CreateAPIKey(ctx, k))
			require.NoError(t, st.CreateAPIKey(ctx, store.APIKey{ID: "k0", UserID: "u1", CreatedAt: time.UnixMilli(1)}))
			keys, err := st.ListAPIKeys(ctx, "u1")
			require.NoError(t, err)
			require.Len(t, keys, 2)
			require.Equal(t, "k0", keys[0].ID)
			require.ErrorIs(t, st.RevokeAPIKey(ctx, "u2", "k1"), store.ErrNotFound)
			require.NoError(t, st.RevokeAPIKey(ctx, "u1", "k1"))
			_, err = st.APIKey(ctx, "k1")
			require.ErrorIs(t, err, store.ErrNotFound)

			key := store.KeyLoginFailuresAccount("a@example.com")
			for i := 1; i <= 3; i++ {
				n, ttl, err := st.AddFailure(ctx, key, time.Minute)
				require.NoError(t, err)
				require.EqualValues(t, i, n)
				require.Positive(t, ttl)
			}
			n, _, err := st.Failures(ctx, key)
			require.NoError(t, err)
			require.EqualValues(t, 3, n)
			require.NoError(t, st.ResetFailures(ctx, key))
			n, _, err = st.Failures(ctx, key)
			require.NoError(t, err)
			require.Zero(t, n)

			lim := ratelimit.New(rdb, 2, time.Hour, time.Hour, slog.Default())
			require.True(t, lim.Allow("user:u1").Allowed)
			lim.Sync(ctx)
			require.True(t, lim.Allow("user:u1").Allowed)
			require.True(t, lim.Allow("user:u1").Allowed) // the overshoot of one sync interval
			lim.Sync(ctx)
			d := lim.Allow("user:u1")
			require.False(t, d.Allowed)
			require.Positive(t, d.RetryAfter)
			// A second replica learns it on its first sync.
			other := ratelimit.New(rdb, 2, time.Hour, time.Hour, slog.Default())
			require.True(t, other.Allow("user:u1").Allowed)
			other.Sync(ctx)
			require.False(t, other.Allow("user:u1").Allowed)
			require.True(t, other.Allow("user:u2").Allowed)
		})
	}
}
