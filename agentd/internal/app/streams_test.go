package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// Followers of event streams hold no Redis connection while they wait: with a pool of 4 connections,
// 40 open streams still leave the service working, and every stream sees the run's events.
func TestManyStreamsDoNotExhaustRedis(t *testing.T) {
	t.Parallel()
	_, sbAddr := startSandboxStub(t)
	env := baseEnv(t, stacktest.SharedRedis(t)+"?pool_size=4&pool_timeout=2s", sbAddr, askScript)
	a := startAgentd(t, env)
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()

	const streams = 40
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var ready, done sync.WaitGroup
	got := make([]int, streams)
	for i := range streams {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			st, err := c.events.StreamEvents(sctx, &agentdv1.StreamEventsRequest{SessionId: sid})
			ready.Done()
			if err != nil {
				return
			}
			for {
				r, err := st.Recv()
				if err != nil {
					return
				}
				got[i]++
				if r.GetEvent().GetData().GetFields()["status"].GetStringValue() == "waiting" {
					return
				}
			}
		}()
	}
	ready.Wait()
	start := time.Now()
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "go"})
	require.NoError(t, err, "the service still answers with every stream open")
	done.Wait()
	t.Logf("%d streams each received the run's events within %v", streams, time.Since(start))
	for i := range streams {
		require.Greater(t, got[i], 2, "stream %d", i)
		require.Equal(t, got[0], got[i], "every stream saw the same events")
	}
}
