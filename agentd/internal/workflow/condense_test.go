package workflow

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

func call(id, name, args string) llm.Message {
	return llm.Message{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: id, Name: name, Arguments: args}}}
}

func result(id, name, out string) llm.Message {
	return llm.Message{Role: llm.RoleTool, ToolCallID: id, ToolName: name, Content: out}
}

// Old observations are masked in what a request carries, never in the conversation itself: the latest
// outputs stay verbatim, members' reports stay whole, long arguments of old calls are elided and stay
// valid JSON.
func TestViewMasksOldObservations(t *testing.T) {
	big := strings.Repeat("x", 5000)
	content, _ := json.Marshal(map[string]string{"path": "src/App.jsx", "content": big})
	msgs := []llm.Message{{Role: llm.RoleUser, Content: "task", Pinned: true},
		call("c1", "file_write", string(content)), result("c1", "file_write", "wrote src/App.jsx"),
		call("c2", "sandbox_shell", `{"command":"npm run build"}`), result("c2", "sandbox_shell", "exit_code: 0\n"+big),
		call("c3", "send_message", `{"to":"alex","content":"go"}`), result("c3", "send_message", "alex reports: "+big),
		call("c4", "sandbox_shell", `{"command":"ls"}`), result("c4", "sandbox_shell", big),
	}
	v := view(msgs, 1)
	require.Equal(t, big, v[8].Content, "the latest output stays verbatim")
	require.Contains(t, v[4].Content, "older output of sandbox_shell masked")
	require.Contains(t, v[4].Content, "exit_code: 0", "with its head")
	require.Less(t, len(v[4].Content), 600)
	require.Equal(t, "alex reports: "+big, v[6].Content, "reports stay whole")
	var args map[string]string
	require.NoError(t, json.Unmarshal([]byte(v[1].ToolCalls[0].Arguments), &args))
	require.Equal(t, "src/App.jsx", args["path"])
	require.Contains(t, args["content"], "5000 characters elided")
	require.Equal(t, big, msgs[4].Content[len("exit_code: 0\n"):], "the conversation itself is untouched")
	require.Equal(t, msgs, view(msgs, 0), "keep 0 masks nothing")
}

func TestPinnedTextDropsStaleBriefs(t *testing.T) {
	msgs := []llm.Message{
		{Role: llm.RoleUser, Pinned: true, Content: "Task from Mike:\n\nbuild it\n\n" + BriefHeading + " — the workspace\nFiles: a lot"},
		call("c1", "file_read", `{"path":"a"}`), result("c1", "file_read", "a"),
		{Role: llm.RoleUser, Pinned: true, Content: "The user wrote while the team was working:\nmake it blue"},
	}
	got := pinnedText(msgs, 10000)
	require.Contains(t, got, "build it")
	require.Contains(t, got, "make it blue")
	require.NotContains(t, got, "Files: a lot")
}

// A member's step that ends in the middle of a turn leaves no call unanswered: the conversation stays
// valid for the next task.
func TestCloseCallsAnswersWhatIsLeft(t *testing.T) {
	c := &Conv{Messages: []llm.Message{{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "a", Name: "x"}, {ID: "b", Name: "y"}}},
		result("a", "x", "done")}}
	closeCalls(c, "not run")
	require.Len(t, c.Messages, 3)
	require.Equal(t, "b", c.Messages[2].ToolCallID)
	require.True(t, c.Messages[2].IsError)
	closeCalls(c, "not run")
	require.Len(t, c.Messages, 3, "idempotent")
}

// A checkpoint appends what the step added; undo takes the preparation back when it was not written.
func TestCommitDeltas(t *testing.T) {
	st := &State{Convs: map[string]*Conv{"alex": {Key: "alex", Base: 4, Saved: 2, Messages: make([]llm.Message, 3)},
		"mike@r": {Key: "mike@r", Saved: 1, Messages: make([]llm.Message, 1)}}, Drop: []string{"mike@old"}}
	head, deltas, undo, err := st.Commit()
	require.NoError(t, err)
	require.Len(t, deltas, 2)
	require.Equal(t, Delta{Key: "mike@old", Drop: true}, deltas[0])
	require.Equal(t, "alex", deltas[1].Key)
	require.Equal(t, 6, deltas[1].Expect, "base + saved")
	require.Len(t, deltas[1].Messages, 1)
	require.Contains(t, string(head), `"saved":3`, "the head describes the conversations once appended")
	require.Empty(t, st.Drop)
	undo()
	require.Equal(t, 2, st.Convs["alex"].Saved)
	require.Equal(t, []string{"mike@old"}, st.Drop)

	back, err := ReadHead(head)
	require.NoError(t, err)
	raw := map[string][][]byte{"alex": {[]byte(`{"role":"user","content":"a"}`), []byte(`{"role":"assistant"}`), []byte(`{"role":"tool"}`)},
		"mike@r": {[]byte(`{"role":"user"}`)}}
	require.NoError(t, back.Load(raw))
	require.Equal(t, "a", back.Convs["alex"].Messages[0].Content)
	raw["alex"] = raw["alex"][:1]
	require.ErrorIs(t, back.Load(raw), errShortConversation)
}

func TestContextWindowFromTheError(t *testing.T) {
	for msg, want := range map[string]int{
		"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.": 128000,
		"prompt is too long: 210000 tokens > 200000 maximum":                                                      200000,
		"input exceeds the context window of 32768 tokens":                                                        32768,
		"the conversation is too long":                                                                            0,
	} {
		require.Equal(t, want, contextWindow(fmt.Errorf("%s", msg)), msg)
	}
}
