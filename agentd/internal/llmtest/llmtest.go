// Package llmtest is a fake OpenAI-compatible chat-completions server for tests. It answers every
// request with a reply chosen by what the request carries — which agent speaks (from its system
// prompt), what its conversation holds — so one fake plays whole multi-run conversations however
// agentd orders its calls. Replies stream in the real SSE wire format; every request is recorded for
// assertions on what agentd sends. It is imported by tests only.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Request is one chat-completions request as the fake received it.
type Request struct {
	// Index counts requests from 0.
	Index int
	// Raw is the request body; Body the decoded JSON.
	Raw  []byte
	Body map[string]any
	// System is the system prompt; Agent the speaking agent's name from it ("You are Alex" → "alex"),
	// "" when it names nobody (the condenser's summary calls).
	System   string
	Agent    string
	Messages []Message
	// ToolChoice is the request's tool_choice ("" when absent).
	ToolChoice string
	Tools      []string
}

// Message is one message of a request.
type Message struct {
	Role       string
	Content    string
	Calls      []Call
	ToolCallID string
}

// Call is a tool call of an assistant message, or of a reply.
type Call struct {
	ID        string
	Name      string
	Arguments string
}

var agentRE = regexp.MustCompile(`(?m)^You are (\w+)`)

func parse(i int, raw []byte) (Request, error) {
	r := Request{Index: i, Raw: raw}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		return r, err
	}
	var body struct {
		Messages []struct {
			Role      string `json:"role"`
			Content   any    `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
			ToolCallID string `json:"tool_call_id"`
		} `json:"messages"`
		ToolChoice any `json:"tool_choice"`
		Tools      []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return r, err
	}
	for _, m := range body.Messages {
		msg := Message{Role: m.Role, Content: text(m.Content), ToolCallID: m.ToolCallID}
		for _, c := range m.ToolCalls {
			msg.Calls = append(msg.Calls, Call{ID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments})
		}
		if m.Role == "system" {
			r.System = msg.Content
			continue
		}
		r.Messages = append(r.Messages, msg)
	}
	if s, ok := body.ToolChoice.(string); ok {
		r.ToolChoice = s
	}
	for _, t := range body.Tools {
		r.Tools = append(r.Tools, t.Function.Name)
	}
	if m := agentRE.FindStringSubmatch(r.System); m != nil {
		r.Agent = strings.ToLower(m[1])
	}
	return r, nil
}

// text flattens a message's content (a string, or an array of text parts).
func text(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case []any:
		var b strings.Builder
		for _, p := range c {
			if m, ok := p.(map[string]any); ok {
				if s, ok := m["text"].(string); ok {
					b.WriteString(s)
				}
			}
		}
		return b.String()
	}
	return ""
}

// Last is the request's last message.
func (r Request) Last() Message {
	if len(r.Messages) == 0 {
		return Message{}
	}
	return r.Messages[len(r.Messages)-1]
}

// LastUser is the content of the request's last user message.
func (r Request) LastUser() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Turns counts the assistant messages since the last user message: how far the agent is into its
// current task.
func (r Request) Turns() int {
	n := 0
	for i := len(r.Messages) - 1; i >= 0 && r.Messages[i].Role != "user"; i-- {
		if r.Messages[i].Role == "assistant" {
			n++
		}
	}
	return n
}

// Contains reports whether the request body carries s anywhere (JSON-escaped text is compared
// unescaped).
func (r Request) Contains(s string) bool {
	if strings.Contains(r.System, s) {
		return true
	}
	for _, m := range r.Messages {
		if strings.Contains(m.Content, s) {
			return true
		}
		for _, c := range m.Calls {
			if strings.Contains(c.Arguments, s) {
				return true
			}
		}
	}
	return false
}

// Called reports whether the conversation holds a call of tool.
func (r Request) Called(tool string) bool {
	for _, m := range r.Messages {
		for _, c := range m.Calls {
			if c.Name == tool {
				return true
			}
		}
	}
	return false
}

// Tokens estimates the request's size in tokens (4 bytes each).
func (r Request) Tokens() int { return len(r.Raw) / 4 }

// Reply is the fake's answer to a request: text and tool calls streamed as a chat completion, or an
// HTTP error.
type Reply struct {
	Text   string
	Calls  []Call
	Finish string // "" picks "tool_calls" or "stop"
	// Status and Error make an error answer (e.g. 400 with a context_length_exceeded body).
	Status int
	Error  string
}

// Say is a text reply.
func Say(text string) Reply { return Reply{Text: text} }

// Tool is a reply calling one tool with args (a JSON string, or any value encoded as JSON).
func Tool(name string, args any) Reply { return Reply{Calls: []Call{call(name, args)}} }

// Tools is a reply calling several tools, each given as Tool(...).
func Tools(rs ...Reply) Reply {
	var out Reply
	for _, r := range rs {
		out.Calls = append(out.Calls, r.Calls...)
	}
	return out
}

func call(name string, args any) Call {
	s, ok := args.(string)
	if !ok {
		b, _ := json.Marshal(args)
		s = string(b)
	}
	return Call{Name: name, Arguments: s}
}

// ContextLengthExceeded is OpenAI's answer to a request longer than the model's window.
func ContextLengthExceeded() Reply {
	return Reply{Status: http.StatusBadRequest, Error: `{"error":{"message":"This model's maximum context length is 16000 tokens. However, your messages resulted in 20000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`}
}

// Server is the fake.
type Server struct {
	URL string
	t   testing.TB
	srv *httptest.Server

	mu   sync.Mutex
	reqs []Request
	rule func(Request) Reply
}

// Start serves rule until the test ends. A rule may block (to hold an agent mid-run) and may call
// t.Errorf; it runs on the request's goroutine.
func Start(t testing.TB, rule func(Request) Reply) *Server {
	s := &Server{t: t, rule: rule}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	req, err := parse(len(s.reqs), raw)
	if err == nil {
		s.reqs = append(s.reqs, req)
	}
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	reply := s.rule(req)
	if reply.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reply.Status)
		_, _ = io.WriteString(w, reply.Error)
		return
	}
	write(w, req, reply)
}

// write streams reply as chat-completion chunks: text, then each call (its arguments in two
// pieces), then the finish reason and a usage chunk sized like the request.
func write(w http.ResponseWriter, req Request, reply Reply) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	chunk := func(delta string, finish string) {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		_, _ = fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, f)
		w.(http.Flusher).Flush()
	}
	if reply.Text != "" {
		b, _ := json.Marshal(reply.Text)
		chunk(`{"content":`+string(b)+`}`, "")
	}
	for i, c := range reply.Calls {
		id := c.ID
		if id == "" {
			id = fmt.Sprintf("call_%d_%d", req.Index, i)
		}
		half := len(c.Arguments) / 2
		for half < len(c.Arguments) && !utf8.RuneStart(c.Arguments[half]) {
			half++ // each piece is valid UTF-8
		}
		first, _ := json.Marshal(c.Arguments[:half])
		rest, _ := json.Marshal(c.Arguments[half:])
		chunk(fmt.Sprintf(`{"tool_calls":[{"index":%d,"id":%q,"type":"function","function":{"name":%q,"arguments":%s}}]}`, i, id, c.Name, first), "")
		chunk(fmt.Sprintf(`{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}`, i, rest), "")
	}
	finish := reply.Finish
	if finish == "" {
		finish = "stop"
		if len(reply.Calls) > 0 {
			finish = "tool_calls"
		}
	}
	chunk(`{}`, finish)
	_, _ = fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":20,\"total_tokens\":%d}}\n\ndata: [DONE]\n\n",
		req.Tokens(), req.Tokens()+20)
	w.(http.Flusher).Flush()
}

// Requests returns every request so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Count is how many requests arrived so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// First returns the first request of agent at or after index from, or false.
func (s *Server) First(agent string, from int) (Request, bool) {
	for _, r := range s.Requests() {
		if r.Index >= from && r.Agent == agent {
			return r, true
		}
	}
	return Request{}, false
}

// Env is agentd's environment for talking to the fake.
func (s *Server) Env() map[string]string {
	return map[string]string{"AGENTD_LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": s.URL,
		"AGENTD_MODEL": "gpt-4o-mini", "AGENTD_LLM_RETRY_BASE_DELAY": "10ms", "AGENTD_LLM_RETRY_MAX_DELAY": "50ms"}
}
