package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// BenchmarkAppend compares appending to the event log (one Lua script: session check, sequence,
// XADD, and the history for messages) with the bare XADD it is built on.
func BenchmarkAppend(b *testing.B) {
	opt, err := redis.ParseURL(stacktest.SharedRedis(b))
	require.NoError(b, err)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	s := store.New(rdb)
	sess := store.Session{ID: uuid.NewString(), OwnerID: "bench", CreatedAt: time.Now()}
	require.NoError(b, s.CreateSession(b.Context(), sess, 0))
	ev := events.Scope{SessionID: sess.ID}.New(events.TypeToken, events.SenderAgent, "alex", "some streamed text of a model")

	b.Run("store.Append", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Append(b.Context(), ev, store.Lease{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline raw XADD", func(b *testing.B) {
		for b.Loop() {
			if err := rdb.XAdd(b.Context(), &redis.XAddArgs{Stream: "bench:raw", Values: []any{"e", ev.GetContent()}}).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
