package events_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/events"
)

func TestEventsAreBuiltOnceAndReadBack(t *testing.T) {
	sc := events.Scope{SessionID: "s1", RunID: "r1"}
	st := sc.Status("alex", "Alex's step ends.", map[string]any{"deps": []string{"t1"}, "n": 3, "nested": map[string]any{"ok": true}})
	require.Equal(t, "Alex", st.GetAgent(), "display name")
	require.Equal(t, "status", st.GetSender())
	require.NotEmpty(t, st.GetMessageId())
	require.True(t, st.GetFinal())
	require.Equal(t, "r1", st.GetRunId())
	require.Equal(t, "t1", st.GetData().GetFields()["deps"].GetListValue().GetValues()[0].GetStringValue(), "slices survive")
	require.Equal(t, 3.0, st.GetData().GetFields()["n"].GetNumberValue())

	b, err := events.Encode(st)
	require.NoError(t, err)
	back, err := events.DecodeEvent(b)
	require.NoError(t, err)
	require.Equal(t, st.GetContent(), back.GetContent())
	require.Equal(t, st.GetData().AsMap(), back.GetData().AsMap())

	h, ok := events.HistoryEntry(st)
	require.True(t, ok, "status lines are history")
	require.Equal(t, "status", h.GetSender())
	require.Equal(t, "Alex", h.GetAgent())
	_, ok = events.HistoryEntry(sc.New(events.TypeToken, events.SenderAgent, "alex", "x"))
	require.False(t, ok, "tokens are not")
	m, ok := events.HistoryEntry(sc.Said("mike", "Done."))
	require.True(t, ok)
	require.Equal(t, "mike", m.GetSender())
	require.Equal(t, "Mike", m.GetAgent())

	// Entries written before events were proto (events.Event as JSON) read the same.
	legacy := `{"type":"tool_call","sender":"agent","agent":"alex","content":"{}","message_id":"m1","final":true,"session_id":"s1",` +
		`"timestamp":"2026-11-30T03:18:47.962123Z","tool":"file_write","invoker":"alex","run_id":"r0","data":{"call_id":"c1","n":2}}`
	old, err := events.DecodeEvent([]byte(legacy))
	require.NoError(t, err)
	require.Equal(t, "file_write", old.GetTool())
	require.Equal(t, "r0", old.GetRunId())
	require.Equal(t, "c1", old.GetData().GetFields()["call_id"].GetStringValue())
	oldMsg, err := events.DecodeMessage([]byte(`{"id":"m1","session_id":"s1","sender":"mike","content":"hi","timestamp":"2026-11-30T03:18:47Z","agent":"mike","run_id":"r0"}`))
	require.NoError(t, err)
	require.Equal(t, "hi", oldMsg.GetContent())
}
