package llm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

func TestDefaultScriptDrivesTheBuild(t *testing.T) {
	s, err := llm.LoadScript("", map[string]string{"port": "4321"})
	require.NoError(t, err)
	p := llm.NewScripted(s)
	calls := play(t, p, "alex", "Task from mike: build it", allTools, map[string]string{"file_list": "/workspace is empty.", "process_list": "web: running (pid 7)"})
	require.Equal(t, "file_list,file_write,file_write,file_write,file_write,file_edit,file_search,process_start,sandbox_shell,process_list,preview_check,preview_url,send_message",
		names(calls))
	for _, c := range calls {
		if c.Name == "preview_url" {
			require.JSONEq(t, `{"port":4321}`, c.Arguments, "variables are substituted before parsing")
		}
	}

	// The same conversation always gets the same turn (replays after a takeover agree).
	a, _ := p.Complete(t.Context(), llm.Request{Agent: "mike"}, llm.Stream{})
	b, _ := p.Complete(t.Context(), llm.Request{Agent: "mike"}, llm.Stream{})
	require.Equal(t, a.ToolCalls, b.ToolCalls)
}
