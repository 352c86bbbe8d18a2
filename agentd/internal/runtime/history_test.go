package runtime

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

func msg(id, sender, agent, content string) *agentdv1.Message {
	m := &agentdv1.Message{Id: id, Sender: sender, Content: content}
	if agent != "" {
		m.Agent = &agent
	}
	return m
}

// The history a new run's lead gets keeps every user message it can (bounded by tokens, not by
// count), Mike's replies, never the members' narration or status lines, and always the original
// request — however long the session.
func TestTranscriptKeepsWhatMatters(t *testing.T) {
	msgs := []*agentdv1.Message{msg("u0", "user", "", "Build a todo app with due dates.")}
	for i := range 60 {
		msgs = append(msgs,
			msg(fmt.Sprint("a", i), "agent", "Alex", "Writing src/App.jsx now, step "+fmt.Sprint(i)),
			msg(fmt.Sprint("s", i), "status", "", "Mike → Alex: do the thing"),
			msg(fmt.Sprint("u", i+1), "user", "", fmt.Sprintf("Follow-up %d: %s", i+1, strings.Repeat("details ", 40))),
			msg(fmt.Sprint("m", i), "mike", "Mike", fmt.Sprintf("Reply %d: done.", i)),
		)
	}
	msgs = append(msgs, msg("now", "user", "", "make the header blue"))

	got := transcript(msgs, "now", 2000)
	require.Contains(t, got, "[user] Build a todo app with due dates.", "the original request never drops out")
	require.Contains(t, got, "[user] Follow-up 60:", "the latest messages are kept")
	require.Contains(t, got, "[Mike] Reply 59: done.")
	require.Contains(t, got, "earlier messages left out to fit the context")
	require.NotContains(t, got, "Writing src/App.jsx", "member narration stays out")
	require.NotContains(t, got, "Mike → Alex", "status lines stay out")
	require.NotContains(t, got, "make the header blue", "the new request comes separately")
	require.LessOrEqual(t, len(got), 2000*4+200, "bounded by tokens")

	whole := transcript(msgs, "now", 100000)
	require.NotContains(t, whole, "earlier messages left out")
	require.Equal(t, 121, strings.Count(whole, "\n["), "all 61 user messages and 60 replies (the first line is the header)")
	require.Empty(t, transcript(msgs, "u0", 2000), "nothing before the first message")
}
