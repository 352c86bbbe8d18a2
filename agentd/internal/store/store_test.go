package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

func newStore(t *testing.T) *store.Store {
	s, _ := newStoreClient(t)
	return s
}

// newStoreClient is newStore with its Redis client, for tests that shape state the store cannot.
func newStoreClient(t *testing.T) (*store.Store, *redis.Client) {
	t.Helper()
	opt, err := redis.ParseURL(stacktest.SharedRedis(t))
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return store.New(rdb), rdb
}

func newSession(t *testing.T, s *store.Store, owner string) store.Session {
	t.Helper()
	sess := store.Session{ID: uuid.NewString(), Title: "t", OwnerID: owner, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	require.NoError(t, s.CreateSession(t.Context(), sess, 0))
	return sess
}

func TestSessionsOwnershipAndOrder(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	a := newSession(t, s, "alice")
	b := store.Session{ID: uuid.NewString(), OwnerID: "alice", CreatedAt: a.CreatedAt.Add(time.Second)}
	require.NoError(t, s.CreateSession(ctx, b, 0))
	newSession(t, s, "bob")

	list, err := s.ListSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{b.ID, a.ID}, []string{list[0].ID, list[1].ID}, "newest first")

	_, err = s.GetSession(ctx, "bob", a.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "another user's session is not found")
	require.ErrorIs(t, s.DeleteSession(ctx, "bob", a.ID), store.ErrNotFound)
	require.NoError(t, s.DeleteSession(ctx, "alice", a.ID))
	_, err = s.GetSession(ctx, "alice", a.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestSessionLimit: an owner has at most the limit of sessions, however many creations race; a
// refused creation leaves nothing behind, a deleted session frees its place, and an index entry of a
// session that no longer exists does not count.
func TestSessionLimit(t *testing.T) {
	s, rdb := newStoreClient(t)
	ctx := t.Context()
	created := make([]error, 12)
	ids := make([]string, len(created))
	var wg sync.WaitGroup
	for i := range created {
		ids[i] = uuid.NewString()
		wg.Go(func() {
			created[i] = s.CreateSession(ctx, store.Session{ID: ids[i], OwnerID: "alice", CreatedAt: time.Now()}, 5)
		})
	}
	wg.Wait()
	var kept []string
	for i, err := range created {
		if err == nil {
			kept = append(kept, ids[i])
			continue
		}
		require.ErrorIs(t, err, store.ErrSessionLimit)
		_, gerr := s.GetSession(ctx, "alice", ids[i])
		require.ErrorIs(t, gerr, store.ErrNotFound, "a refused session leaves no record")
	}
	require.Len(t, kept, 5)
	list, err := s.ListSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 5)
	require.NoError(t, s.CreateSession(ctx, store.Session{ID: uuid.NewString(), OwnerID: "bob", CreatedAt: time.Now()}, 5), "per owner")

	require.NoError(t, s.DeleteSession(ctx, "alice", kept[0]))
	require.NoError(t, s.CreateSession(ctx, store.Session{ID: uuid.NewString(), OwnerID: "alice", CreatedAt: time.Now()}, 5))
	require.ErrorIs(t, s.CreateSession(ctx, store.Session{ID: uuid.NewString(), OwnerID: "alice", CreatedAt: time.Now()}, 5), store.ErrSessionLimit)

	// A session whose record vanished but whose index entry stayed (a delete cut off halfway).
	require.NoError(t, rdb.Del(ctx, "agentd:session:{"+kept[1]+"}").Err())
	require.NoError(t, s.CreateSession(ctx, store.Session{ID: uuid.NewString(), OwnerID: "alice", CreatedAt: time.Now()}, 5),
		"a dangling index entry frees its place")
	list, err = s.ListSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 5)
}

func TestAppendAssignsStrictlyIncreasingSequences(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sess := newSession(t, s, "alice")
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				sc := events.Scope{SessionID: sess.ID}
				ev := sc.New(events.TypeToken, events.SenderAgent, "alex", fmt.Sprint(w, i))
				switch i % 10 {
				case 0:
					ev = sc.Said("alex", fmt.Sprint(w, i))
				case 5:
					ev = sc.Status("", fmt.Sprint(w, i), nil)
				}
				_, err := s.Append(ctx, ev, store.Lease{})
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()

	all, err := s.EventsAfter(ctx, sess.ID, 0, 10000)
	require.NoError(t, err)
	require.Len(t, all, writers*each)
	for i, ev := range all {
		require.Equal(t, uint32(i+1), ev.GetSequence(), "no gaps, no duplicates")
	}
	tail, err := s.EventsAfter(ctx, sess.ID, 390, 10000)
	require.NoError(t, err)
	require.Len(t, tail, 10)
	require.Equal(t, uint32(391), tail[0].GetSequence())

	// The history holds exactly the chat lines (messages and statuses), in log order.
	msgs, err := s.Messages(ctx, sess.ID)
	require.NoError(t, err)
	var fromLog []string
	for _, ev := range all {
		if ev.GetType() == events.TypeMessage || ev.GetType() == events.TypeStatus {
			fromLog = append(fromLog, ev.GetMessageId())
		}
	}
	var fromHistory []string
	for _, m := range msgs {
		fromHistory = append(fromHistory, m.GetId())
	}
	require.Equal(t, fromLog, fromHistory)

	_, err = s.Append(ctx, events.Scope{SessionID: uuid.NewString()}.Status("", "x", nil), store.Lease{})
	require.ErrorIs(t, err, store.ErrNotFound, "no events for a missing session")
}

func TestHubWakesFollowers(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sess := newSession(t, s, "alice")
	other := newSession(t, s, "alice")
	hub := s.NewHub(ctx)
	wake, stop := hub.Follow(ctx, sess.ID)
	wake2, stop2 := hub.Follow(ctx, sess.ID)
	quiet, stop3 := hub.Follow(ctx, other.ID)
	defer stop3()
	require.Equal(t, 2, hub.Followed())
	// Subscribing is asynchronous: append until the first notification arrives.
	require.Eventually(t, func() bool {
		_, err := s.Append(ctx, events.Scope{SessionID: sess.ID}.New(events.TypeToken, events.SenderAgent, "", "x"), store.Lease{})
		require.NoError(t, err)
		select {
		case <-wake:
			return true
		case <-time.After(50 * time.Millisecond):
			return false
		}
	}, 5*time.Second, time.Millisecond)
	select {
	case <-wake2:
	case <-time.After(5 * time.Second):
		t.Fatal("every follower of the session is woken")
	}
	select {
	case <-quiet:
		t.Fatal("another session's follower was woken")
	default:
	}
	stop()
	stop2()
	require.Equal(t, 1, hub.Followed())
}

func startRun(t *testing.T, s *store.Store, sess store.Session, text string) (store.StartOutcome, string, error) {
	t.Helper()
	msg := events.Scope{SessionID: sess.ID}.Message(uuid.NewString(), events.SenderUser, "", text)
	return s.StartRun(t.Context(), sess.OwnerID, msg, uuid.NewString())
}

func TestRunLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sess := newSession(t, s, "alice")

	out, rid, err := startRun(t, s, sess, "build")
	require.NoError(t, err)
	require.Equal(t, store.Started, out)
	out, active, err := startRun(t, s, sess, "second")
	require.NoError(t, err)
	require.Equal(t, store.Steered, out, "one active run per session: a second message steers it")
	require.Equal(t, rid, active)
	msgs, _ := s.Messages(ctx, sess.ID)
	require.Len(t, msgs, 2, "the steering message is in the history")
	inbox, err := s.Inbox(ctx, sess.ID, rid, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"second"}, inbox, "and in the run's inbox for its lead")

	_, _, err = s.StartRun(ctx, "mallory", events.Scope{SessionID: sess.ID}.Message("m", events.SenderUser, "", "x"), uuid.NewString())
	require.ErrorIs(t, err, store.ErrNotFound)

	l1 := store.Lease{SessionID: sess.ID, RunID: rid, Token: "r1"}
	l2 := store.Lease{SessionID: sess.ID, RunID: rid, Token: "r2"}
	ok, _, err := s.AcquireLease(ctx, l1, 200*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	ok, status, err := s.AcquireLease(ctx, l2, time.Second)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "held", status)

	started, _, err := s.BeginTool(ctx, l1, "f0:c1", "sandbox_shell")
	require.NoError(t, err)
	require.True(t, started)

	// r1 dies: its lease expires and r2 takes over; r1's writes are fenced off from then on.
	require.Eventually(t, func() bool {
		ok, _, err := s.AcquireLease(ctx, l2, time.Second)
		return err == nil && ok
	}, 3*time.Second, 20*time.Millisecond)
	_, err = s.Append(ctx, events.Scope{SessionID: sess.ID}.Status("", "x", nil), l1)
	require.ErrorIs(t, err, store.ErrLeaseLost)
	require.ErrorIs(t, s.Checkpoint(ctx, l1, []byte("{}"), nil, store.Usage{}), store.ErrLeaseLost)
	_, err = s.RenewLease(ctx, l1, time.Second)
	require.ErrorIs(t, err, store.ErrLeaseLost)

	started, prev, err := s.BeginTool(ctx, l2, "f0:c1", "sandbox_shell")
	require.NoError(t, err)
	require.False(t, started, "a started call is never started again")
	require.Equal(t, "started", prev.State)

	require.NoError(t, s.Checkpoint(ctx, l2, []byte(`{"steps":1}`), nil, store.Usage{InputTokens: 10, OutputTokens: 5, CostUSD: 0.25}))
	run, err := s.GetRun(ctx, sess.ID, rid)
	require.NoError(t, err)
	require.Equal(t, 2, run.Attempts)
	require.JSONEq(t, `{"steps":1}`, string(run.Checkpoint))

	// Waiting for the user: the next message answers the run instead of starting one.
	_, err = s.FinishRun(ctx, l2, store.RunWaiting, "", nil)
	require.NoError(t, err)
	out, answered, err := startRun(t, s, sess, "blue")
	require.NoError(t, err)
	require.Equal(t, store.Answered, out)
	require.Equal(t, rid, answered)
	run, _ = s.GetRun(ctx, sess.ID, rid)
	require.Equal(t, "blue", run.Answer)
	require.Equal(t, store.RunQueued, run.Status)

	got, err := s.CancelRun(ctx, "alice", sess.ID, rid, events.Scope{SessionID: sess.ID, RunID: rid}.Status("", "Run cancelled.", nil))
	require.NoError(t, err)
	require.Equal(t, store.CancelDone, got, "a queued run is cancelled on the spot")
	active, err = s.ActiveRun(ctx, sess.ID)
	require.NoError(t, err)
	require.Empty(t, active)
	out, _, err = startRun(t, s, sess, "again")
	require.NoError(t, err)
	require.Equal(t, store.Started, out)

	sess2 := newSession(t, s, "alice")
	u, err := s.GetSession(ctx, "alice", sess.ID)
	require.NoError(t, err)
	require.Equal(t, int64(10), u.InputTokens)
	require.InDelta(t, 0.25, u.CostUSD, 1e-9)
	require.NoError(t, s.DeleteSession(ctx, "alice", sess.ID))
	_, err = s.GetRun(ctx, sess.ID, rid)
	require.ErrorIs(t, err, store.ErrNotFound, "runs go with their session")
	_ = sess2
}

func TestQueueClaimsIdleEntries(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	require.NoError(t, s.EnsureQueue(ctx))
	require.NoError(t, s.EnsureQueue(ctx), "idempotent")
	require.NoError(t, s.Enqueue(ctx, "s1", "r1"))
	got, err := s.ReadQueue(ctx, "a", 1, time.Second)
	require.NoError(t, err)
	require.Len(t, got, 1)
	none, err := s.ReadQueue(ctx, "b", 1, 50*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, none, "delivered once")
	var claimed []store.QueueEntry
	require.Eventually(t, func() bool {
		claimed, err = s.ClaimIdle(ctx, "b", 100*time.Millisecond, 10)
		return err == nil && len(claimed) == 1
	}, 3*time.Second, 50*time.Millisecond)
	require.Equal(t, "r1", claimed[0].RunID)
	require.NoError(t, s.Ack(ctx, claimed[0].ID))
	claimed, err = s.ClaimIdle(ctx, "c", 0, 10)
	require.NoError(t, err)
	require.Empty(t, claimed)
}
