package e2e_test

import (
	"testing"

	"github.com/mgx-ai/mgx/agentd/internal/llmtest"
)

// fakeModel is the model of the tool tests: internal/llmtest's OpenAI-compatible server (the real SSE
// wire format), answering each agent with its brain. It records every request, so a test asserts what
// the runtime sent the model.
type fakeModel struct {
	*llmtest.Server
}

// modelRequest is what the runtime sent in one call; Agent is the speaking agent.
type modelRequest = llmtest.Request

// brain answers one agent's model calls.
type brain func(r modelRequest) answer

// answer is a model turn: text and tool calls.
type answer struct {
	Text  string
	Calls []call
}

type call struct {
	Name string
	Args any
}

func (a answer) reply() llmtest.Reply {
	var calls []llmtest.Reply
	for _, c := range a.Calls {
		args := c.Args
		if args == nil {
			args = map[string]any{}
		}
		calls = append(calls, llmtest.Tool(c.Name, args))
	}
	r := llmtest.Tools(calls...)
	r.Text = a.Text
	return r
}

// startFakeModel answers each agent with its brain; an agent without one reports done.
func startFakeModel(t *testing.T, brains map[string]brain) *fakeModel {
	return &fakeModel{llmtest.Start(t, func(r llmtest.Request) llmtest.Reply {
		b, ok := brains[r.Agent]
		if !ok {
			b = reportDone
		}
		return b(r).reply()
	})}
}

// resultOf finds the result the runtime sent the model for the call with a given id, in any request.
func (f *fakeModel) resultOf(callID string) (string, bool) {
	for _, r := range f.Requests() {
		for _, m := range r.Messages {
			if m.Role == "tool" && m.ToolCallID == callID {
				return m.Content, true
			}
		}
	}
	return "", false
}

// steps is a member that makes the given calls one per turn of its current task, each chosen when
// its turn comes (it may look at the results so far), then reports to the lead.
func steps(next ...func(r modelRequest) call) brain {
	return func(r modelRequest) answer {
		if n := r.Turns(); n < len(next) {
			return answer{Calls: []call{next[n](r)}}
		}
		return answer{Calls: []call{{Name: "send_message", Args: map[string]any{"to": "mike", "content": "done"}}}}
	}
}

func do(name string, args any) func(modelRequest) call {
	return func(modelRequest) call { return call{Name: name, Args: args} }
}

// delegate is a lead that gives member one task and ends when it reports.
func delegate(member, task string) brain {
	return func(r modelRequest) answer {
		if r.Turns() == 0 {
			return answer{Calls: []call{{Name: "send_message", Args: map[string]any{"to": member, "content": task}}}}
		}
		return answer{Calls: []call{{Name: "end", Args: map[string]any{"summary": "done"}}}}
	}
}

func reportDone(r modelRequest) answer {
	if r.Agent == "mike" {
		return answer{Calls: []call{{Name: "end", Args: map[string]any{"summary": "done"}}}}
	}
	return answer{Calls: []call{{Name: "send_message", Args: map[string]any{"to": "mike", "content": "done"}}}}
}
