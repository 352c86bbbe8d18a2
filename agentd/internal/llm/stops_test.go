package llm_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

// recorder is an LLM API fake that records request bodies and answers with handlers in turn (the last
// one repeats).
type recorder struct {
	mu     sync.Mutex
	bodies []map[string]any
	srv    *httptest.Server
}

func record(t *testing.T, handlers ...func(w http.ResponseWriter, r *http.Request)) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		rec.mu.Lock()
		n := len(rec.bodies)
		rec.bodies = append(rec.bodies, body)
		rec.mu.Unlock()
		handlers[min(n, len(handlers)-1)](w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.bodies...)
}

func openAIStream(chunks ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		s := startSSE(w)
		for _, c := range chunks {
			s.data(c)
		}
		s.data("[DONE]")
	}
}

func finish(reason string) string {
	return `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":[{"index":0,"delta":{},"finish_reason":"` + reason + `"}]}`
}

func status(code int, body string, headers ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func TestOpenAIStops(t *testing.T) {
	tests := []struct {
		name        string
		chunks      []string
		wantStop    llm.Stop
		wantReason  string
		wantRefusal string
		wantUsage   llm.Usage
	}{
		{name: "length", chunks: []string{chunk(`{"content":"Once upon"}`), finish("length")}, wantStop: llm.StopLength, wantReason: "length"},
		{name: "content filter", chunks: []string{chunk(`{"content":"Here"}`), finish("content_filter")}, wantStop: llm.StopContentFilter, wantReason: "content_filter"},
		{name: "refusal deltas", chunks: []string{chunk(`{"refusal":"I can't "}`), chunk(`{"refusal":"do that."}`), finish("stop")},
			wantStop: llm.StopRefusal, wantReason: "refusal", wantRefusal: "I can't do that."},
		{name: "tool calls", chunks: []string{chunk(`{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"end","arguments":"{}"}}]}`), finish("tool_calls")},
			wantStop: llm.StopToolUse, wantReason: "tool_calls"},
		{name: "a compatible server ending a tool turn with stop", chunks: []string{chunk(`{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"end","arguments":"{}"}}]}`), finish("stop")},
			wantStop: llm.StopToolUse, wantReason: "stop"},
		{name: "cached tokens", chunks: []string{chunk(`{"content":"ok"}`), finish("stop"),
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":10,"total_tokens":1010,"prompt_tokens_details":{"cached_tokens":800}}}`},
			wantStop: llm.StopEnd, wantReason: "stop", wantUsage: llm.Usage{InputTokens: 1000, OutputTokens: 10, CacheReadTokens: 800}},
		{name: "DeepSeek's cache fields", chunks: []string{chunk(`{"content":"ok"}`), finish("stop"),
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"deepseek-chat","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":10,"total_tokens":1010,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":360}}`},
			wantStop: llm.StopEnd, wantReason: "stop", wantUsage: llm.Usage{InputTokens: 1000, OutputTokens: 10, CacheReadTokens: 640}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := record(t, openAIStream(tc.chunks...))
			p := llm.NewOpenAI(llm.OpenAIOptions{APIKey: "sk", BaseURL: rec.srv.URL, Model: "gpt-4o"})
			resp, err := p.Complete(t.Context(), request, llm.Stream{})
			require.NoError(t, err)
			require.Equal(t, tc.wantStop, resp.Stop)
			require.Equal(t, tc.wantReason, resp.StopReason)
			require.Equal(t, tc.wantRefusal, resp.Refusal)
			require.Equal(t, tc.wantStop.Refused(), resp.Stop.Refused())
			require.Equal(t, 16384, resp.MaxTokens)
			if tc.wantUsage != (llm.Usage{}) {
				require.Equal(t, tc.wantUsage, resp.Usage)
			}
		})
	}
}

func TestOpenAIOutputCapParameter(t *testing.T) {
	tests := []struct {
		model     string
		pattern   string
		maxTokens int
		field     string
		want      float64
	}{
		{model: "o1", field: "max_completion_tokens", want: 32768},
		{model: "o3-mini-2025-01-31", field: "max_completion_tokens", want: 32768},
		{model: "o4-mini", field: "max_completion_tokens", want: 32768},
		{model: "gpt-5", field: "max_completion_tokens", want: 32768},
		{model: "gpt-5.4-mini", field: "max_completion_tokens", want: 32768},
		{model: "openai/gpt-5-nano", field: "max_completion_tokens", want: 32768},
		{model: "gpt-4o-2024-08-06", field: "max_tokens", want: 16384},
		{model: "gpt-4.1", field: "max_tokens", want: 32768},
		{model: "deepseek-chat", field: "max_tokens", want: 8192},
		{model: "qwen2.5-coder:32b", field: "max_tokens", want: 4096},
		{model: "qwen3-thinking", pattern: "thinking", field: "max_completion_tokens", want: 4096},
		{model: "gpt-4o", maxTokens: 1000, field: "max_tokens", want: 1000},
		{model: "o3", maxTokens: 50000, field: "max_completion_tokens", want: 50000},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			rec := record(t, openAIStream(chunk(`{"content":"ok"}`), finish("stop")))
			var pattern *regexp.Regexp
			if tc.pattern != "" {
				pattern = regexp.MustCompile(tc.pattern)
			}
			p := llm.NewOpenAI(llm.OpenAIOptions{APIKey: "sk", BaseURL: rec.srv.URL, Model: tc.model, CompletionTokensModels: pattern})
			req := request
			req.MaxTokens = tc.maxTokens
			_, err := p.Complete(t.Context(), req, llm.Stream{})
			require.NoError(t, err)
			body := rec.requests()[0]
			require.Equal(t, tc.want, body[tc.field])
			other := map[string]string{"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}[tc.field]
			require.NotContains(t, body, other, "the two caps are never sent together")
		})
	}
}

func anthropicStream(stop string, startUsage, deltaUsage string, blocks ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		s := startSSE(w)
		s.event("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":`+startUsage+`}}`)
		for i, text := range blocks {
			b, _ := json.Marshal(text)
			s.event("content_block_start", `{"type":"content_block_start","index":`+itoa(i)+`,"content_block":{"type":"text","text":""}}`)
			s.event("content_block_delta", `{"type":"content_block_delta","index":`+itoa(i)+`,"delta":{"type":"text_delta","text":`+string(b)+`}}`)
			s.event("content_block_stop", `{"type":"content_block_stop","index":`+itoa(i)+`}`)
		}
		s.event("message_delta", `{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},"usage":`+deltaUsage+`}`)
		s.event("message_stop", `{"type":"message_stop"}`)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestAnthropicStops(t *testing.T) {
	tests := []struct {
		stop       string
		want       llm.Stop
		deltaUsage string
		wantUsage  llm.Usage
	}{
		{stop: "end_turn", want: llm.StopEnd, deltaUsage: `{"output_tokens":30}`,
			wantUsage: llm.Usage{InputTokens: 600, CacheReadTokens: 300, CacheWriteTokens: 200, OutputTokens: 30}},
		{stop: "max_tokens", want: llm.StopLength, deltaUsage: `{"output_tokens":30}`,
			wantUsage: llm.Usage{InputTokens: 600, CacheReadTokens: 300, CacheWriteTokens: 200, OutputTokens: 30}},
		{stop: "model_context_window_exceeded", want: llm.StopLength, deltaUsage: `{"output_tokens":30}`,
			wantUsage: llm.Usage{InputTokens: 600, CacheReadTokens: 300, CacheWriteTokens: 200, OutputTokens: 30}},
		{stop: "refusal", want: llm.StopRefusal, deltaUsage: `{"output_tokens":3}`,
			wantUsage: llm.Usage{InputTokens: 600, CacheReadTokens: 300, CacheWriteTokens: 200, OutputTokens: 3}},
		{stop: "end_turn", want: llm.StopEnd, // newer API versions repeat cumulative input counts at the end
			deltaUsage: `{"input_tokens":150,"cache_creation_input_tokens":250,"cache_read_input_tokens":350,"output_tokens":30}`,
			wantUsage:  llm.Usage{InputTokens: 750, CacheReadTokens: 350, CacheWriteTokens: 250, OutputTokens: 30}},
	}
	for _, tc := range tests {
		t.Run(tc.stop, func(t *testing.T) {
			rec := record(t, anthropicStream(tc.stop, `{"input_tokens":100,"cache_creation_input_tokens":200,"cache_read_input_tokens":300,"output_tokens":1}`, tc.deltaUsage, "Some text"))
			p := llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak", BaseURL: rec.srv.URL, Model: "claude-test"})
			resp, err := p.Complete(t.Context(), request, llm.Stream{})
			require.NoError(t, err)
			require.Equal(t, tc.want, resp.Stop)
			require.Equal(t, tc.stop, resp.StopReason)
			require.Equal(t, tc.wantUsage, resp.Usage)
		})
	}
}

// blocksOf flattens a Messages API request's content blocks, tool results' inner blocks included.
func blocksOf(body map[string]any) []map[string]any {
	var out []map[string]any
	for _, m := range body["messages"].([]any) {
		for _, b := range m.(map[string]any)["content"].([]any) {
			b := b.(map[string]any)
			out = append(out, b)
			if inner, ok := b["content"].([]any); ok {
				for _, c := range inner {
					out = append(out, c.(map[string]any))
				}
			}
		}
	}
	return out
}

func TestAnthropicRequestShape(t *testing.T) {
	conversation := llm.Request{
		Agent: "alex", System: "be brief",
		Messages: []llm.Message{
			{Role: llm.RoleUser, Content: "build"},
			{Role: llm.RoleAssistant, Content: "  ", ToolCalls: []llm.ToolCall{{ID: "c0", Name: "file_read", Arguments: `{"path":"empty.txt"}`}}},
			{Role: llm.RoleTool, ToolCallID: "c0", ToolName: "file_read", Content: ""},
			{Role: llm.RoleAssistant, Content: "Now the logs.", ToolCalls: []llm.ToolCall{
				{ID: "c1", Name: "process_logs", Arguments: `{"name":"web"}`}, {ID: "c2", Name: "sandbox_shell", Arguments: `{"command":"true"}`}}},
			{Role: llm.RoleTool, ToolCallID: "c1", ToolName: "process_logs", Content: "\n"},
			{Role: llm.RoleTool, ToolCallID: "c2", ToolName: "sandbox_shell", Content: "exit_code: 0", IsError: false},
			{Role: llm.RoleAssistant, Content: ""},
			{Role: llm.RoleUser, Content: ""},
		},
		Tools: []llm.Tool{
			{Name: "file_read", Description: "read", Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}}}`)},
			{Name: "sandbox_shell", Description: "run", Parameters: json.RawMessage(`{"type":"object","properties":{"command":{"type":"string"}}}`)},
		},
	}
	t.Run("no empty text block, placeholders for empty output", func(t *testing.T) {
		rec := record(t, anthropicStream("end_turn", `{"input_tokens":1,"output_tokens":1}`, `{"output_tokens":1}`, "ok"))
		p := llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak", BaseURL: rec.srv.URL, Model: "claude-sonnet-4-5", PromptCache: true})
		_, err := p.Complete(t.Context(), conversation, llm.Stream{})
		require.NoError(t, err)
		body := rec.requests()[0]
		var results []string
		for _, b := range blocksOf(body) {
			if b["type"] == "text" {
				require.NotEmpty(t, strings.TrimSpace(b["text"].(string)), "an empty text block: Anthropic answers 400")
			}
			if b["type"] == "tool_result" {
				results = append(results, b["content"].([]any)[0].(map[string]any)["text"].(string))
			}
		}
		require.Equal(t, []string{"(no output)", "(no output)", "exit_code: 0"}, results)
		require.Equal(t, 32000.0, body["max_tokens"])
	})
	t.Run("cache breakpoints on tools, system and the recent turns", func(t *testing.T) {
		rec := record(t, anthropicStream("end_turn", `{"input_tokens":1,"output_tokens":1}`, `{"output_tokens":1}`, "ok"))
		p := llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak", BaseURL: rec.srv.URL, Model: "claude-sonnet-4-5", PromptCache: true})
		_, err := p.Complete(t.Context(), conversation, llm.Stream{})
		require.NoError(t, err)
		body := rec.requests()[0]
		tools := body["tools"].([]any)
		require.Nil(t, tools[0].(map[string]any)["cache_control"])
		require.Equal(t, map[string]any{"type": "ephemeral"}, tools[1].(map[string]any)["cache_control"])
		require.Equal(t, map[string]any{"type": "ephemeral"}, body["system"].([]any)[0].(map[string]any)["cache_control"])
		msgs := body["messages"].([]any)
		var marked []int
		for i, m := range msgs {
			blocks := m.(map[string]any)["content"].([]any)
			for j, b := range blocks {
				if b.(map[string]any)["cache_control"] != nil {
					require.Equal(t, len(blocks)-1, j, "a breakpoint ends a message")
					marked = append(marked, i)
				}
			}
		}
		// user, assistant, tool result, assistant, tool results, assistant, user: the end of the
		// conversation and the end of the previous request's (before the latest assistant turn).
		require.Equal(t, []int{4, 6}, marked)
	})
	t.Run("caching off", func(t *testing.T) {
		rec := record(t, anthropicStream("end_turn", `{"input_tokens":1,"output_tokens":1}`, `{"output_tokens":1}`, "ok"))
		p := llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak", BaseURL: rec.srv.URL, Model: "claude-3-5-haiku-latest"})
		_, err := p.Complete(t.Context(), conversation, llm.Stream{})
		require.NoError(t, err)
		raw, _ := json.Marshal(rec.requests()[0])
		require.NotContains(t, string(raw), "cache_control")
		require.Equal(t, 8192.0, rec.requests()[0]["max_tokens"])
	})
}

func TestToolCallArgumentsStream(t *testing.T) {
	type piece struct {
		index      int
		name, args string
	}
	collect := func(got *[]piece) llm.Stream {
		return llm.Stream{ToolCall: func(d llm.ToolCallDelta) { *got = append(*got, piece{d.Index, d.Name, d.Arguments}) }}
	}
	t.Run("openai", func(t *testing.T) {
		rec := record(t, openAIStream(
			chunk(`{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"file_write","arguments":"{\"path\":"}}]}`),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"x\"}"}}]}`),
			chunk(`{"tool_calls":[{"index":0,"id":"b","type":"function","function":{"name":"file_read","arguments":"{}"}}]}`),
			finish("tool_calls")))
		var got []piece
		p := llm.NewOpenAI(llm.OpenAIOptions{APIKey: "sk", BaseURL: rec.srv.URL})
		resp, err := p.Complete(t.Context(), request, collect(&got))
		require.NoError(t, err)
		require.Equal(t, []piece{{0, "file_write", `{"path":`}, {0, "", `"x"}`}, {1, "file_read", "{}"}}, got,
			"positions follow the calls, even where a provider reuses stream index 0")
		require.Len(t, resp.ToolCalls, 2)
	})
	t.Run("anthropic", func(t *testing.T) {
		rec := record(t, func(w http.ResponseWriter, _ *http.Request) {
			s := startSSE(w)
			s.event("message_start", `{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}`)
			s.event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
			s.event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Writing."}}`)
			s.event("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"file_write","input":{}}}`)
			s.event("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\":\"a\","}}`)
			s.event("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"content\":\"b\"}"}}`)
			s.event("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}`)
			s.event("message_stop", `{"type":"message_stop"}`)
		})
		var got []piece
		p := llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak", BaseURL: rec.srv.URL})
		_, err := p.Complete(t.Context(), request, collect(&got))
		require.NoError(t, err)
		require.Equal(t, []piece{{0, "file_write", ""}, {0, "", `{"path":"a",`}, {0, "", `"content":"b"}`}}, got)
	})
}

func TestRetriesAndErrors(t *testing.T) {
	overloaded := `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
	okAnthropic := anthropicStream("end_turn", `{"input_tokens":10,"output_tokens":1}`, `{"output_tokens":2}`, "ok")
	okOpenAI := openAIStream(chunk(`{"content":"ok"}`), finish("stop"), usageChunk)
	reset := func(w http.ResponseWriter, _ *http.Request) {
		s := startSSE(w)
		s.data(chunk(`{"content":"half"}`))
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			if tcp, ok := conn.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // an RST, not a clean close
			}
			_ = conn.Close()
		}
	}
	tests := []struct {
		name         string
		anthropic    bool
		handlers     []func(w http.ResponseWriter, r *http.Request)
		wantRequests int
		wantErr      string
		wantContext  bool
		minElapsed   time.Duration
		wantNotice   string
	}{
		{name: "anthropic 529 overloaded, then success", anthropic: true,
			handlers: []func(w http.ResponseWriter, r *http.Request){status(529, overloaded), okAnthropic}, wantRequests: 2},
		{name: "anthropic overloaded_error mid-stream, then success", anthropic: true,
			handlers: []func(w http.ResponseWriter, r *http.Request){func(w http.ResponseWriter, _ *http.Request) {
				s := startSSE(w)
				s.event("message_start", `{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}`)
				s.event("error", overloaded)
			}, okAnthropic}, wantRequests: 2},
		{name: "anthropic prompt too long is a context-length error, not retried", anthropic: true,
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(400, `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}`)},
			wantRequests: 1, wantErr: "prompt is too long", wantContext: true},
		{name: "openai context_length_exceeded, not retried",
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(400, `{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}`)},
			wantRequests: 1, wantErr: "maximum context length", wantContext: true},
		{name: "openai insufficient quota is not retried",
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(429, `{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","code":"insufficient_quota"}}`)},
			wantRequests: 1, wantErr: "current quota"},
		{name: "openai bad request is not retried",
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(400, `{"error":{"message":"Invalid schema for function","type":"invalid_request_error"}}`)},
			wantRequests: 1, wantErr: "Invalid schema"},
		{name: "x-should-retry false is obeyed",
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(503, `{"error":{"message":"down","type":"server_error"}}`, "x-should-retry", "false")},
			wantRequests: 1, wantErr: "down"},
		{name: "a Retry-After beyond the limit is not waited for",
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(429, `{"error":{"message":"slow down","type":"rate_limit_exceeded"}}`, "retry-after", "3600")},
			wantRequests: 1, wantErr: "retry after 1h0m0s"},
		{name: "Retry-After is honoured",
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(429, `{"error":{"message":"slow down","type":"rate_limit_exceeded"}}`, "retry-after-ms", "300"), okOpenAI},
			wantRequests: 2, minElapsed: 300 * time.Millisecond},
		{name: "a connection reset mid-stream, then success",
			handlers: []func(w http.ResponseWriter, r *http.Request){reset, okOpenAI}, wantRequests: 2, wantNotice: "openai: the connection was reset"},
		{name: "a server sending neither finish reason nor usage, only [DONE], is complete",
			handlers: []func(w http.ResponseWriter, r *http.Request){openAIStream(chunk(`{"content":"ok"}`))}, wantRequests: 1},
		{name: "an OpenAI stream closed before it finished, then success",
			handlers: []func(w http.ResponseWriter, r *http.Request){func(w http.ResponseWriter, _ *http.Request) {
				startSSE(w).data(chunk(`{"content":"half an ans"}`))
			}, okOpenAI}, wantRequests: 2},
		{name: "an Anthropic stream closed before message_delta, then success", anthropic: true,
			handlers: []func(w http.ResponseWriter, r *http.Request){func(w http.ResponseWriter, _ *http.Request) {
				s := startSSE(w)
				s.event("message_start", `{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}`)
				s.event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
				s.event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"half"}}`)
			}, okAnthropic}, wantRequests: 2},
		{name: "persistent 500s give up after the retries",
			handlers:     []func(w http.ResponseWriter, r *http.Request){status(500, `{"error":{"message":"boom","type":"server_error"}}`)},
			wantRequests: 3, wantErr: "HTTP 500: server_error: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := record(t, tc.handlers...)
			var p llm.Provider = llm.NewOpenAI(llm.OpenAIOptions{APIKey: "sk", BaseURL: rec.srv.URL, IdleTimeout: 2 * time.Second})
			if tc.anthropic {
				p = llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak", BaseURL: rec.srv.URL, IdleTimeout: 2 * time.Second})
			}
			policy := retries
			policy.MaxRetryAfter = time.Minute
			var notices []llm.Retry
			start := time.Now()
			resp, err := policy.Complete(t.Context(), p, request, llm.Stream{}, func(r llm.Retry) { notices = append(notices, r) })
			require.Len(t, rec.requests(), tc.wantRequests)
			require.Len(t, notices, max(tc.wantRequests-1, 0), "one notice per retry")
			for i, n := range notices {
				require.NotContains(t, n.Err.Error(), "127.0.0.1", "no address reaches the chat")
				if tc.wantNotice != "" {
					require.Equal(t, tc.wantNotice, n.Err.Error())
				}
				require.Equal(t, i+1, n.Attempt)
				require.Equal(t, 3, n.MaxAttempts)
				require.True(t, n.Err.Retryable)
			}
			require.GreaterOrEqual(t, time.Since(start), tc.minElapsed)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, "ok", resp.Content)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.Equal(t, tc.wantContext, errorsIs(err, llm.ErrContextLength))
		})
	}
}

// The usage of a failed attempt is part of the turn's: providers bill what they streamed.
func TestFailedAttemptUsageCounts(t *testing.T) {
	var n atomic.Int32
	rec := record(t, func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		s := startSSE(w)
		s.event("message_start", `{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":700,"cache_read_input_tokens":300,"output_tokens":1}}}`)
		s.event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		s.event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"`+strings.Repeat("word ", 80)+`"}}`)
		s.event("error", `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`)
	}, anthropicStream("end_turn", `{"input_tokens":100,"output_tokens":1}`, `{"output_tokens":5}`, "ok"))
	p := llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak", BaseURL: rec.srv.URL})
	resp, err := retries.Complete(t.Context(), p, request, llm.Stream{}, nil)
	require.NoError(t, err)
	require.Equal(t, llm.Usage{InputTokens: 1100, CacheReadTokens: 300, OutputTokens: 5 + 100, Estimated: true}, resp.Usage,
		"the failed attempt's 1000 input tokens and ~100 streamed output tokens are counted, as estimates where the provider said nothing")

	// All attempts failing still report what they used.
	rec = record(t, func(w http.ResponseWriter, _ *http.Request) {
		s := startSSE(w)
		s.data(chunk(`{"content":"` + strings.Repeat("x", 400) + `"}`))
		s.data(`{"error":{"message":"upstream exploded","type":"server_error"}}`)
	})
	resp, err = retries.Complete(t.Context(), llm.NewOpenAI(llm.OpenAIOptions{APIKey: "sk", BaseURL: rec.srv.URL}), request, llm.Stream{}, nil)
	require.ErrorContains(t, err, "upstream exploded")
	require.True(t, resp.Usage.Estimated)
	require.Equal(t, int64(3*100), resp.Usage.OutputTokens, "three attempts of ~100 tokens each")
	require.Positive(t, resp.Usage.InputTokens)
}

func TestPricing(t *testing.T) {
	p := llm.NewPricing(map[string]llm.Price{"gpt-4o": {InputPerMTok: 2, OutputPerMTok: 8}, "my-local": {InputPerMTok: 0.01, OutputPerMTok: 0.02}}, llm.Price{})
	tests := []struct {
		model string
		want  llm.Price
		known bool
	}{
		{model: "gpt-4o", want: llm.Price{InputPerMTok: 2, OutputPerMTok: 8}, known: true}, // overridden
		{model: "gpt-4o-2024-08-06", want: llm.Price{InputPerMTok: 2, OutputPerMTok: 8}, known: true},
		{model: "gpt-4o-mini", want: llm.Price{InputPerMTok: 0.15, OutputPerMTok: 0.60, CacheReadPerMTok: 0.075}, known: true},
		{model: "gpt-5.4-mini-2026-03-17", want: llm.Price{InputPerMTok: 0.75, OutputPerMTok: 4.50, CacheReadPerMTok: 0.075}, known: true},
		{model: "o3-mini", want: llm.Price{InputPerMTok: 1.10, OutputPerMTok: 4.40, CacheReadPerMTok: 0.55}, known: true},
		{model: "anthropic/claude-sonnet-4.5", want: llm.Price{InputPerMTok: 3, OutputPerMTok: 15, CacheReadPerMTok: 0.30, CacheWritePerMTok: 3.75}, known: true},
		{model: "claude-sonnet-4-20250514", want: llm.Price{InputPerMTok: 3, OutputPerMTok: 15, CacheReadPerMTok: 0.30, CacheWritePerMTok: 3.75}, known: true},
		{model: "claude-opus-4-6", want: llm.Price{InputPerMTok: 5, OutputPerMTok: 25, CacheReadPerMTok: 0.50, CacheWritePerMTok: 6.25}, known: true},
		{model: "claude-opus-4-1-20250805", want: llm.Price{InputPerMTok: 15, OutputPerMTok: 75, CacheReadPerMTok: 1.50, CacheWritePerMTok: 18.75}, known: true},
		{model: "deepseek-chat", want: llm.Price{InputPerMTok: 0.28, OutputPerMTok: 0.42, CacheReadPerMTok: 0.028}, known: true},
		{model: "MY-LOCAL", want: llm.Price{InputPerMTok: 0.01, OutputPerMTok: 0.02}, known: true},
		{model: "gpt-4", want: llm.Price{InputPerMTok: 30, OutputPerMTok: 60}, known: true},
		{model: "gpt-4x", known: false},
		{model: "llama3.1:8b", known: false},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			got, known := p.For(tc.model)
			require.Equal(t, tc.known, known)
			require.Equal(t, tc.want, got)
		})
	}
	fallback := llm.NewPricing(nil, llm.Price{InputPerMTok: 1, OutputPerMTok: 2})
	got, known := fallback.For("llama3.1:8b")
	require.True(t, known)
	require.Equal(t, llm.Price{InputPerMTok: 1, OutputPerMTok: 2}, got)

	sonnet, _ := p.For("claude-sonnet-4-5")
	u := llm.Usage{InputTokens: 6000, CacheReadTokens: 3000, CacheWriteTokens: 2000, OutputTokens: 500}
	require.InDelta(t, (1000*3+3000*0.30+2000*3.75+500*15)/1e6, sonnet.Cost(u), 1e-12)
	plain := llm.Price{InputPerMTok: 1, OutputPerMTok: 2}
	require.InDelta(t, (6000*1+500*2)/1e6, plain.Cost(u), 1e-12, "without cache rates, cached tokens cost the input rate")
}

func TestParsePrices(t *testing.T) {
	got, err := llm.ParsePrices(" gpt-4o=2.5/10/1.25 ; my-model=0.1/0.2,claude-x=1/5/0.1/1.25 ")
	require.NoError(t, err)
	require.Equal(t, map[string]llm.Price{
		"gpt-4o":   {InputPerMTok: 2.5, OutputPerMTok: 10, CacheReadPerMTok: 1.25},
		"my-model": {InputPerMTok: 0.1, OutputPerMTok: 0.2},
		"claude-x": {InputPerMTok: 1, OutputPerMTok: 5, CacheReadPerMTok: 0.1, CacheWritePerMTok: 1.25},
	}, got)
	for _, bad := range []string{"gpt-4o", "gpt-4o=1", "=1/2", "m=1/x", "m=1/2/3/4/5", "m=-1/2"} {
		_, err := llm.ParsePrices(bad)
		require.ErrorIs(t, err, llm.ErrInvalidPrices, bad)
	}
}

func TestInspectCut(t *testing.T) {
	tests := []struct {
		args      string
		field     string
		bytes     int
		salvaged  string
		wantTotal int
	}{
		{args: `{"path":"src/App.tsx","content":"import React from 'react';\nexport`, field: "content", bytes: len(`import React from 'react';\nexport`), salvaged: `{"path":"src/App.tsx"}`},
		{args: `{"path":"a.txt","mode":"w","content":  "`, field: "content", bytes: 0, salvaged: `{"mode":"w","path":"a.txt"}`},
		{args: `{"path":"a.txt","cont`, salvaged: `{"path":"a.txt"}`},
		{args: `{"pa`, salvaged: `{}`},
		{args: ``, salvaged: `{}`},
		{args: `{"content":"` + strings.Repeat("x", 400) + `","path":"b`, field: "path", bytes: 1, salvaged: `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.args[:min(len(tc.args), 20)], func(t *testing.T) {
			c := llm.InspectCut(tc.args)
			require.Equal(t, len(tc.args), c.Bytes)
			require.Equal(t, tc.field, c.Field)
			require.Equal(t, tc.bytes, c.FieldBytes)
			require.JSONEq(t, tc.salvaged, c.Salvage())
		})
	}
}

func TestMaxOutputTokens(t *testing.T) {
	for model, want := range map[string]int{
		"claude-sonnet-4-5": 32000, "claude-opus-4-1-20250805": 32000, "claude-3-5-haiku-latest": 8192, "claude-3-haiku-20240307": 4096,
		"claude-sonnet-5-5": 32000, "gpt-4o-mini": 16384, "gpt-5.5": 32768, "o1-mini": 32768, "deepseek-reasoner": 32768,
		"mistral-small": 1234,
	} {
		require.Equal(t, want, llm.MaxOutputTokens(model, 1234), model)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
