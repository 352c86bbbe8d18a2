package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/store"
)

func entries(from, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, []byte(fmt.Sprintf(`{"n":%d}`, from+i)))
	}
	return out
}

// Conversations are append-only lists a checkpoint extends: what a step appended, fenced by the
// lease, cut back to what the head expects when a step never checkpointed, refused when entries are
// missing, deleted with Drop and with the session.
func TestCheckpointAppendsConversations(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sess := newSession(t, s, "alice")
	_, rid, err := startRun(t, s, sess, "go")
	require.NoError(t, err)
	l := store.Lease{SessionID: sess.ID, RunID: rid, Token: "r1"}
	ok, _, err := s.AcquireLease(ctx, l, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)

	require.NoError(t, s.Checkpoint(ctx, l, []byte(`{"h":1}`), []store.ConvDelta{
		{Key: "alex", Expect: 0, Entries: entries(0, 3)},
		{Key: "mike@r", Expect: 0, Entries: entries(100, 1200)}, // more than one RPUSH batch
	}, store.Usage{}))
	require.NoError(t, s.Checkpoint(ctx, l, []byte(`{"h":2}`), []store.ConvDelta{{Key: "alex", Expect: 3, Entries: entries(3, 2)}}, store.Usage{}))
	got, err := s.Conversations(ctx, sess.ID, []store.ConvRange{{Key: "alex", From: 1, Count: 4}, {Key: "mike@r", From: 0, Count: 1200}})
	require.NoError(t, err)
	require.Len(t, got["alex"], 4)
	require.Equal(t, `{"n":1}`, string(got["alex"][0]))
	require.Equal(t, `{"n":4}`, string(got["alex"][3]))
	require.Len(t, got["mike@r"], 1200)
	require.Equal(t, `{"n":1299}`, string(got["mike@r"][1199]))

	// A replica died after appending two entries its head never recorded: the next checkpoint,
	// from the head, expects 5 and the stray entries are cut before it appends.
	require.NoError(t, s.Checkpoint(ctx, l, []byte(`{"h":3}`), []store.ConvDelta{{Key: "alex", Expect: 5, Entries: entries(5, 2)}}, store.Usage{}))
	require.NoError(t, s.Checkpoint(ctx, l, []byte(`{"h":3}`), []store.ConvDelta{{Key: "alex", Expect: 5, Entries: entries(50, 1)}}, store.Usage{}))
	got, err = s.Conversations(ctx, sess.ID, []store.ConvRange{{Key: "alex", From: 0, Count: 10}})
	require.NoError(t, err)
	require.Len(t, got["alex"], 6)
	require.Equal(t, `{"n":50}`, string(got["alex"][5]))

	require.ErrorIs(t, s.Checkpoint(ctx, l, []byte(`{}`), []store.ConvDelta{{Key: "alex", Expect: 9, Entries: entries(0, 1)}}, store.Usage{}),
		store.ErrConversationLost, "entries the head counts on are missing")
	require.ErrorIs(t, s.Checkpoint(ctx, store.Lease{SessionID: sess.ID, RunID: rid, Token: "other"}, []byte(`{}`),
		[]store.ConvDelta{{Key: "alex", Expect: 6, Entries: entries(0, 1)}}, store.Usage{}), store.ErrLeaseLost)

	require.NoError(t, s.Checkpoint(ctx, l, []byte(`{"h":4}`), []store.ConvDelta{{Key: "mike@r", Drop: true}}, store.Usage{}))
	got, err = s.Conversations(ctx, sess.ID, []store.ConvRange{{Key: "mike@r", From: 0, Count: 10}})
	require.NoError(t, err)
	require.Empty(t, got["mike@r"])

	rid2, head, _, err := s.LatestCheckpoint(ctx, sess.ID)
	require.NoError(t, err)
	require.Equal(t, rid, rid2)
	require.JSONEq(t, `{"h":4}`, string(head))

	require.NoError(t, s.DeleteSession(ctx, "alice", sess.ID))
	left, err := s.Client().Keys(ctx, "*"+sess.ID+"*").Result()
	require.NoError(t, err)
	require.Empty(t, left, "nothing of the session is left, its conversations and inboxes included")
}
