package llm_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

var allTools = []string{"file_list", "file_read", "file_write", "file_edit", "file_search", "sandbox_shell", "process_start",
	"process_list", "preview_check", "preview_url", "send_message", "end"}

func toolList(names []string) []llm.Tool {
	out := make([]llm.Tool, 0, len(names))
	for _, n := range names {
		out = append(out, llm.Tool{Name: n})
	}
	return out
}

// play runs an agent's conversation against the scripted provider until it reports (send_message or
// end), answering each call with results[tool] (or "ok"), and returns the calls it made.
func play(t *testing.T, p *llm.Scripted, agent, task string, tools []string, results map[string]string) []llm.ToolCall {
	t.Helper()
	msgs := []llm.Message{{Role: llm.RoleUser, Content: task}}
	var calls []llm.ToolCall
	for range 30 {
		resp, err := p.Complete(t.Context(), llm.Request{Agent: agent, Messages: msgs, Tools: toolList(tools)}, llm.Stream{})
		require.NoError(t, err)
		msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls})
		for _, c := range resp.ToolCalls {
			calls = append(calls, c)
			if c.Name == "send_message" || c.Name == "end" {
				return calls
			}
			out, ok := results[c.Name]
			if !ok {
				out = "ok"
			}
			msgs = append(msgs, llm.Message{Role: llm.RoleTool, ToolCallID: c.ID, ToolName: c.Name, Content: out})
		}
	}
	t.Fatalf("the agent never reported: %s", names(calls))
	return nil
}

func names(calls []llm.ToolCall) string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Name)
	}
	return strings.Join(out, ",")
}

func TestDefaultScriptAdapts(t *testing.T) {
	s, err := llm.LoadScript("", map[string]string{"port": "4321"})
	require.NoError(t, err)
	p := llm.NewScripted(s)
	existing := "/workspace (4 files):\nindex.html  300 B\nserver.js  400 B\n"

	t.Run("a second message edits the app instead of rebuilding it", func(t *testing.T) {
		calls := play(t, p, "alex", "Task from mike: change it. The user asked: make the title <b>blue</b>\n\n## Project brief\nfiles: index.html", allTools,
			map[string]string{"file_list": existing, "process_list": "web: running (pid 7)",
				"file_edit": `edited index.html: replaced 1 occurrence. <p class="update">Updated on request: …`})
		require.Equal(t, "file_list,file_search,file_edit,process_list,preview_check,preview_url,send_message", names(calls))
		require.Contains(t, calls[2].Arguments, `Updated on request: make the title \u0026lt;b\u0026gt;blue\u0026lt;/b\u0026gt;\u003c/p\u003e`,
			"the user's request, escaped for HTML, goes into the page, and nothing after it")
		require.Contains(t, calls[len(calls)-1].Arguments, "Changed")
	})
	t.Run("a server that is gone is started again", func(t *testing.T) {
		calls := play(t, p, "alex", "Task from mike: change it", allTools,
			map[string]string{"file_list": existing, "process_list": "No background processes and no listening ports."})
		require.Equal(t, "file_list,file_search,file_edit,process_list,process_start,preview_check,preview_url,send_message", names(calls))
	})
	t.Run("without a browser there is no preview check", func(t *testing.T) {
		var tools []string
		for _, n := range allTools {
			if n != "preview_check" {
				tools = append(tools, n)
			}
		}
		calls := play(t, p, "alex", "Task from mike: build it", tools, map[string]string{"file_list": "/workspace is empty.", "process_list": "web: running"})
		require.NotContains(t, names(calls), "preview_check")
		require.Contains(t, names(calls), "preview_url")
	})
	t.Run("a new request starts the lead's list over", func(t *testing.T) {
		var msgs []llm.Message
		leadTools := toolList([]string{"plan_append", "plan_update", "send_message", "reply_to_human", "end"})
		var first []string
		for range 5 {
			resp, err := p.Complete(t.Context(), llm.Request{Agent: "mike", Messages: append([]llm.Message{{Role: llm.RoleUser, Content: "build"}}, msgs...), Tools: leadTools}, llm.Stream{})
			require.NoError(t, err)
			msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, ToolCalls: resp.ToolCalls})
			for _, c := range resp.ToolCalls {
				first = append(first, c.Name)
				msgs = append(msgs, llm.Message{Role: llm.RoleTool, ToolCallID: c.ID, ToolName: c.Name, Content: "alex reports: Done"})
			}
		}
		require.Equal(t, []string{"plan_append", "send_message", "plan_update", "reply_to_human", "end"}, first)
		msgs = append([]llm.Message{{Role: llm.RoleUser, Content: "build"}}, msgs...)
		msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: "now make it blue"})
		resp, err := p.Complete(t.Context(), llm.Request{Agent: "mike", Messages: msgs, Tools: leadTools}, llm.Stream{})
		require.NoError(t, err)
		require.Equal(t, "plan_append", resp.ToolCalls[0].Name, "a steered or resumed conversation plans the new request")
		msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, ToolCalls: resp.ToolCalls},
			llm.Message{Role: llm.RoleTool, ToolCallID: resp.ToolCalls[0].ID, ToolName: "plan_append", Content: "ok"})
		resp, err = p.Complete(t.Context(), llm.Request{Agent: "mike", Messages: msgs, Tools: leadTools}, llm.Stream{})
		require.NoError(t, err)
		require.Contains(t, resp.ToolCalls[0].Arguments, "The user asked: now make it blue")
	})
}
