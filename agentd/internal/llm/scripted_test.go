package llm_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

func TestDefaultScriptDrivesTheBuild(t *testing.T) {
	s, err := llm.LoadScript("", map[string]string{"port": "4321"})
	require.NoError(t, err)
	p := llm.NewScripted(s)
	var tools []string
	var msgs []llm.Message
	for range 8 {
		resp, err := p.Complete(t.Context(), llm.Request{Agent: "alex", Messages: msgs}, llm.Stream{})
		require.NoError(t, err)
		for _, c := range resp.ToolCalls {
			tools = append(tools, c.Name)
			if c.Name == "preview_url" {
				require.JSONEq(t, `{"port":4321}`, c.Arguments, "variables are substituted before parsing")
			}
		}
		msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls})
	}
	joined := strings.Join(tools, ",")
	require.Contains(t, joined, "file_write,file_write,file_write,file_write,process_start,sandbox_shell,preview_url,send_message")

	// The same conversation always gets the same turn (replays after a takeover agree).
	a, _ := p.Complete(t.Context(), llm.Request{Agent: "mike"}, llm.Stream{})
	b, _ := p.Complete(t.Context(), llm.Request{Agent: "mike"}, llm.Stream{})
	require.Equal(t, a.ToolCalls, b.ToolCalls)
}
