package app_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// The frontend's types name agents "Mike", "Emma", "Bob", "Alex", "David", "Iris" and drop every
// event without a message_id; the chat it rebuilds after a reload comes from the history. So: agent
// display names in the agent field (the sender stays lowercase), a message id and final on every
// status, error and tool_call event, and status and error lines kept in the history.
const chatLinesScript = `
agents:
  mike:
    - text: "Planning."
      tool_calls:
        - {name: plan_append, args: {tasks: [{id: t1, title: Say hi, assignee: alex}]}}
    - tool_calls:
        - {name: send_message, args: {to: alex, content: "say hi"}}
    - tool_calls:
        - {name: reply_to_human, args: {content: "All done."}}
    - tool_calls:
        - {name: end, args: {}}
  alex:
    - text: "Running it."
      tool_calls:
        - {name: teleport, args: {}}
    - tool_calls:
        - {name: sandbox_shell, args: {command: "echo hi"}}
    - tool_calls:
        - {name: send_message, args: {to: mike, content: "said hi"}}
`

func TestChatLinesForTheFrontend(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	a := startAgentd(t, baseEnv(t, stacktest.SharedRedis(t), sbAddr, chatLinesScript))
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	sid := sess.GetSession().GetId()
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sid, Content: "say hi"})
	require.NoError(t, err)
	evs := collect(t, c, ctx, sid, 0, runEnded("completed"))

	display := map[string]bool{"Mike": true, "Emma": true, "Bob": true, "Alex": true, "David": true, "Iris": true}
	senders := map[string]bool{"user": true, "mike": true, "agent": true, "status": true}
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.GetType()] = true
		if e.GetAgent() != "" {
			require.True(t, display[e.GetAgent()], "agent %q of a %s event is a display name", e.GetAgent(), e.GetType())
		}
		if e.GetSender() != "" {
			require.True(t, senders[e.GetSender()], "sender %q of a %s event stays lowercase", e.GetSender(), e.GetType())
		}
		switch e.GetType() {
		case "status", "error", "tool_call", "message":
			require.NotEmpty(t, e.GetMessageId(), "%s event without a message id: %s", e.GetType(), e.GetContent())
			require.True(t, e.GetFinal(), "%s event not final: %s", e.GetType(), e.GetContent())
		}
	}
	for _, typ := range []string{"status", "error", "tool_call", "message"} {
		require.True(t, seen[typ], "the run had %s events: %s", typ, describeEvents(evs))
	}
	require.NotNil(t, findAgent(evs, "message", "Alex"), "Alex's narration is attributed to Alex")
	require.NotNil(t, findAgent(evs, "tool_call", "Alex"))
	require.NotNil(t, findAgent(evs, "message", "Mike"))

	msgs, err := c.sessions.ListMessages(ctx, &agentdv1.ListMessagesRequest{SessionId: sid})
	require.NoError(t, err)
	byID := map[string]*agentdv1.Message{}
	for _, m := range msgs.GetMessages() {
		byID[m.GetId()] = m
		if m.GetAgent() != "" {
			require.True(t, display[m.GetAgent()], "history agent %q is a display name", m.GetAgent())
		}
		require.True(t, senders[m.GetSender()])
	}
	for _, e := range evs {
		if e.GetType() != "status" && e.GetType() != "error" {
			continue
		}
		m := byID[e.GetMessageId()]
		require.NotNil(t, m, "the %s line %q is in the history, so a reload shows it", e.GetType(), e.GetContent())
		require.Equal(t, "status", m.GetSender())
		require.Equal(t, e.GetContent(), m.GetContent())
	}
	sessWith, err := c.sessions.GetSession(ctx, &agentdv1.GetSessionRequest{Id: sid})
	require.NoError(t, err)
	require.Len(t, sessWith.GetSession().GetMessages(), len(msgs.GetMessages()))
}

func findAgent(evs []*agentdv1.Event, typ, agent string) *agentdv1.Event {
	for _, e := range evs {
		if e.GetType() == typ && e.GetAgent() == agent {
			return e
		}
	}
	return nil
}
