// Package workflow is Mike's orchestration: the lead plans and delegates, each member runs its own tool
// loop until it reports back, the lead reviews and goes on, and everything is bounded. The whole
// progress of a run is the State below, checkpointed after every step, so a run resumes on any replica
// exactly where the last one stopped.
package workflow

import "github.com/mgx-ai/mgx/agentd/internal/llm"

// State is a run's checkpoint.
type State struct {
	// Frames is the stack of conversations: the lead's at the bottom, the member it delegated to on top.
	Frames      []Frame `json:"frames"`
	NextFrameID int     `json:"next_frame_id"`
	Plan        []Task  `json:"plan,omitempty"`
	Steps       int     `json:"steps"`
	ToolCalls   int     `json:"tool_calls"`
	Tokens      int64   `json:"tokens"`
	// Unpriced lists the models of this run without a known price (each is announced once), and
	// UsageEstimated says some of the run's token counts are estimates, not the provider's.
	Unpriced       []string `json:"unpriced,omitempty"`
	UsageEstimated bool     `json:"usage_estimated,omitempty"`
	// WaitingCall is the key of the ask_human call the run waits on; Answer is the user's reply once
	// it arrived.
	WaitingCall string `json:"waiting_call,omitempty"`
	Answer      string `json:"answer,omitempty"`
}

// Frame is one agent's conversation within the run.
type Frame struct {
	ID       int           `json:"id"`
	Agent    string        `json:"agent"`
	Messages []llm.Message `json:"messages"`
	// ParentCall is the id of the lead's send_message call this frame answers.
	ParentCall string `json:"parent_call,omitempty"`
	// Invalid counts consecutive unusable outputs (bad arguments, refused tools).
	Invalid int `json:"invalid,omitempty"`
	// Recent holds the signatures of the latest tool calls, for repetition detection.
	Recent []string `json:"recent,omitempty"`
}

// Task is one entry of the plan.
type Task struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Assignee  string   `json:"assignee"`
	DependsOn []string `json:"depends_on,omitempty"`
	Status    string   `json:"status"`
	Note      string   `json:"note,omitempty"`
}

// NewState starts a run for the user's prompt with the lead.
func NewState(lead, prompt string) *State {
	return &State{
		Frames:      []Frame{{ID: 0, Agent: lead, Messages: []llm.Message{{Role: llm.RoleUser, Content: prompt}}}},
		NextFrameID: 1,
	}
}

// pendingCall returns the first call of the frame's last model turn that has no result yet.
func (f *Frame) pendingCall() (llm.ToolCall, bool) {
	last := -1
	for i := len(f.Messages) - 1; i >= 0; i-- {
		if f.Messages[i].Role == llm.RoleAssistant {
			last = i
			break
		}
	}
	if last < 0 {
		return llm.ToolCall{}, false
	}
	resolved := len(f.Messages) - 1 - last
	calls := f.Messages[last].ToolCalls
	if resolved < len(calls) {
		return calls[resolved], true
	}
	return llm.ToolCall{}, false
}
