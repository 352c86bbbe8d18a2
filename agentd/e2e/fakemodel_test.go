package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeModel is an OpenAI-compatible chat-completions server (the real SSE wire format) whose answers
// are chosen from what it receives: which agent asks — recognised by the tools it is offered, so the
// prompts can change freely — and what that agent's conversation holds so far. It records every
// request, so a test asserts what the runtime sent the model.
type fakeModel struct {
	t      *testing.T
	srv    *httptest.Server
	brains map[string]brain

	mu       sync.Mutex
	requests []modelRequest
}

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

// modelRequest is what the runtime sent in one call.
type modelRequest struct {
	Agent    string
	Messages []wireMessage
	Tools    []string
}

type wireMessage struct {
	Role       string
	Content    string
	ToolCallID string
	ToolCalls  []wireCall
}

type wireCall struct {
	ID, Name, Arguments string
}

// agentOf names the agent by the tools its role is given (registry/agents.yaml).
func agentOf(tools []string) string {
	has := func(n string) bool { return slices.Contains(tools, n) }
	switch {
	case has("plan_append"):
		return "mike"
	case has("sandbox_shell"):
		return "alex"
	case has("python_run"):
		return "david"
	case has("fetch_url") && has("file_insert"):
		return "iris"
	case has("fetch_url"):
		return "emma"
	}
	return "bob"
}

func startFakeModel(t *testing.T, brains map[string]brain) *fakeModel {
	f := &fakeModel{t: t, brains: brains}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeModel) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Messages []struct {
			Role       string          `json:"role"`
			Content    json.RawMessage `json:"content"`
			ToolCallID string          `json:"tool_call_id"`
			ToolCalls  []struct {
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"messages"`
		Tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req modelRequest
	for _, tl := range body.Tools {
		req.Tools = append(req.Tools, tl.Function.Name)
	}
	req.Agent = agentOf(req.Tools)
	for _, m := range body.Messages {
		wm := wireMessage{Role: m.Role, Content: contentText(m.Content), ToolCallID: m.ToolCallID}
		for _, c := range m.ToolCalls {
			wm.ToolCalls = append(wm.ToolCalls, wireCall{ID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments})
		}
		req.Messages = append(req.Messages, wm)
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	n := len(f.requests)
	f.mu.Unlock()

	b, ok := f.brains[req.Agent]
	if !ok {
		b = reportDone
	}
	a := b(req)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	write := func(delta string, finish string) {
		fin := "null"
		if finish != "" {
			fin = `"` + finish + `"`
		}
		_, _ = fmt.Fprintf(w, "data: {\"id\":\"c%d\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", n, delta, fin)
		w.(http.Flusher).Flush()
	}
	if a.Text != "" {
		t, _ := json.Marshal(a.Text)
		write(`{"content":`+string(t)+`}`, "")
	}
	for i, c := range a.Calls {
		args, err := json.Marshal(c.Args)
		if err != nil {
			f.t.Errorf("fake model: arguments of %s: %v", c.Name, err)
		}
		if c.Args == nil {
			args = []byte("{}")
		}
		as, _ := json.Marshal(string(args))
		write(fmt.Sprintf(`{"tool_calls":[{"index":%d,"id":"call_%d_%d","type":"function","function":{"name":%q,"arguments":%s}}]}`, i, n, i, c.Name, as), "")
	}
	finish := "stop"
	if len(a.Calls) > 0 {
		finish = "tool_calls"
	}
	write(`{}`, finish)
	_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fake","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}}`+"\n\ndata: [DONE]\n\n")
}

// contentText reads a message's content, a string or an array of text parts.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

func (f *fakeModel) all() []modelRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// resultOf finds the result the runtime sent the model for the call with a given id, in any request.
func (f *fakeModel) resultOf(callID string) (string, bool) {
	for _, r := range f.all() {
		for _, m := range r.Messages {
			if m.Role == "tool" && m.ToolCallID == callID {
				return m.Content, true
			}
		}
	}
	return "", false
}

// turns counts the agent's earlier turns in the conversation.
func (r modelRequest) turns() int {
	n := 0
	for _, m := range r.Messages {
		if m.Role == "assistant" {
			n++
		}
	}
	return n
}

// steps is a member that makes the given calls one per turn, each chosen when its turn comes (it may
// look at the results so far), then reports to the lead.
func steps(next ...func(r modelRequest) call) brain {
	return func(r modelRequest) answer {
		if n := r.turns(); n < len(next) {
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
		if r.turns() == 0 {
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
