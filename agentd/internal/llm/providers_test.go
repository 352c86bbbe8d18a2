package llm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

// sse writes server-sent events the way the real APIs do, flushing each one.
type sse struct {
	w http.ResponseWriter
}

func startSSE(w http.ResponseWriter) sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return sse{w}
}

func (s sse) raw(text string) {
	_, _ = io.WriteString(s.w, text)
	s.w.(http.Flusher).Flush()
}

func (s sse) data(v string)           { s.raw("data: " + v + "\n\n") }
func (s sse) event(name, data string) { s.raw("event: " + name + "\ndata: " + data + "\n\n") }

func chunk(delta string) string {
	return `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}`
}

const usageChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`

// retries is the turn-level retry policy the providers run under, with test-sized delays.
var retries = llm.RetryPolicy{MaxRetries: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

var request = llm.Request{
	Agent: "alex", System: "be brief",
	Messages: []llm.Message{
		{Role: llm.RoleUser, Content: "build"},
		{Role: llm.RoleAssistant, Content: "ok", ToolCalls: []llm.ToolCall{{ID: "c0", Name: "file_read", Arguments: `{"path":"a"}`}}},
		{Role: llm.RoleTool, ToolCallID: "c0", ToolName: "file_read", Content: "A"},
	},
	Tools: []llm.Tool{{Name: "file_write", Description: "write", Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}`)}},
}

func TestOpenAIStreaming(t *testing.T) {
	tests := []struct {
		name      string
		handler   func(t *testing.T, calls int, s sse)
		status    []int // statuses answered before the stream, one per request
		wantText  string
		wantCalls []llm.ToolCall
		wantUsage llm.Usage
		wantErr   string
	}{
		{
			name: "text, tool-call deltas by index, keep-alives and usage",
			handler: func(t *testing.T, _ int, s sse) {
				s.data(chunk(`{"role":"assistant","content":"Wri"}`))
				s.raw(": keep-alive\n\n")
				s.data(chunk(`{"content":"ting"}`))
				s.data(chunk(`{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"file_write","arguments":""}}]}`))
				s.data(chunk(`{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"file_read","arguments":"{\"path\":"}}]}`))
				s.data(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":\"x\"}"}}]}`))
				s.data(chunk(`{"tool_calls":[{"index":1,"function":{"arguments":"\"y\"}"}}]}`))
				s.raw(": keep-alive\n\n")
				s.data(usageChunk)
				s.data("[DONE]")
			},
			wantText:  "Writing",
			wantCalls: []llm.ToolCall{{ID: "call_a", Name: "file_write", Arguments: `{"path":"x"}`}, {ID: "call_b", Name: "file_read", Arguments: `{"path":"y"}`}},
			wantUsage: llm.Usage{InputTokens: 12, OutputTokens: 7},
		},
		{
			name: "provider reusing index 0 and sending whole calls",
			handler: func(t *testing.T, _ int, s sse) {
				s.data(chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"file_write","arguments":"{\"path\":\"a\"}"}}]}`))
				s.data(chunk(`{"tool_calls":[{"index":0,"id":"call_2","type":"function","function":{"name":"file_write","arguments":"{\"path\":\"b\"}"}}]}`))
				s.data(usageChunk)
				s.data("[DONE]")
			},
			wantCalls: []llm.ToolCall{{ID: "call_1", Name: "file_write", Arguments: `{"path":"a"}`}, {ID: "call_2", Name: "file_write", Arguments: `{"path":"b"}`}},
			wantUsage: llm.Usage{InputTokens: 12, OutputTokens: 7},
		},
		{
			name: "provider reusing index 0 without ids",
			handler: func(t *testing.T, _ int, s sse) {
				s.data(chunk(`{"tool_calls":[{"index":0,"type":"function","function":{"name":"file_write","arguments":"{\"path\":"}}]}`))
				s.data(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}}]}`))
				s.data(chunk(`{"tool_calls":[{"index":0,"type":"function","function":{"name":"file_read","arguments":"{\"path\":\"b\"}"}}]}`))
				s.data(strings.Replace(chunk(`{}`), `"finish_reason":null`, `"finish_reason":"tool_calls"`, 1))
				s.data("[DONE]")
			},
			wantCalls: []llm.ToolCall{{Name: "file_write", Arguments: `{"path":"a"}`}, {Name: "file_read", Arguments: `{"path":"b"}`}},
		},
		{
			name:   "429 then success is retried",
			status: []int{http.StatusTooManyRequests, http.StatusBadGateway},
			handler: func(t *testing.T, calls int, s sse) {
				require.Equal(t, 3, calls)
				s.data(chunk(`{"content":"hi"}`))
				s.data(strings.Replace(chunk(`{}`), `"finish_reason":null`, `"finish_reason":"stop"`, 1))
				s.data("[DONE]")
			},
			wantText: "hi",
		},
		{
			name: "error mid-stream",
			handler: func(t *testing.T, _ int, s sse) {
				s.data(chunk(`{"content":"par"}`))
				s.data(`{"error":{"message":"upstream exploded","type":"server_error"}}`)
			},
			wantErr: "upstream exploded",
		},
		{
			name:    "persistent 500 fails after retries",
			status:  []int{500, 500, 500, 500, 500},
			wantErr: "500",
		},
		{
			name: "keep-alives alone do not keep a stalled stream open",
			handler: func(t *testing.T, _ int, s sse) {
				s.data(chunk(`{"content":"a"}`))
				for range 30 {
					s.raw(": keep-alive\n\n")
					time.Sleep(50 * time.Millisecond)
				}
			},
			wantErr: "idle_timeout",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				require.Equal(t, "/chat/completions", r.URL.Path)
				require.Equal(t, "Bearer sk-test", r.Header.Get("Authorization"))
				var body map[string]any
				require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
				require.Equal(t, true, body["stream"])
				require.Len(t, body["messages"], 4, "system, user, assistant with its tool call, tool result")
				require.Len(t, body["tools"], 1)
				if n <= len(tc.status) {
					w.Header().Set("retry-after-ms", "10")
					w.WriteHeader(tc.status[n-1])
					_, _ = io.WriteString(w, `{"error":{"message":"status `+fmt.Sprint(tc.status[n-1])+`","type":"x"}}`)
					return
				}
				tc.handler(t, n, startSSE(w))
			}))
			defer srv.Close()
			p := llm.NewOpenAI(llm.OpenAIOptions{APIKey: "sk-test", BaseURL: srv.URL, Model: "gpt-test", IdleTimeout: 300 * time.Millisecond})
			var streamed strings.Builder
			resp, err := retries.Complete(t.Context(), p, request, llm.Stream{Text: func(s string) { streamed.WriteString(s) }}, nil)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				if tc.wantErr == "idle_timeout" {
					require.ErrorIs(t, err, llm.ErrIdleTimeout)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantText, resp.Content)
			require.Equal(t, tc.wantText, streamed.String())
			if tc.wantCalls == nil {
				tc.wantCalls = []llm.ToolCall{}
			}
			require.ElementsMatch(t, tc.wantCalls, append([]llm.ToolCall{}, resp.ToolCalls...))
			require.Equal(t, tc.wantUsage, resp.Usage)
		})
	}
}

func TestOpenAICancellation(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := startSSE(w)
		s.data(chunk(`{"content":"a"}`))
		<-r.Context().Done()
	}))
	defer srv.Close()
	p := llm.NewOpenAI(llm.OpenAIOptions{APIKey: "sk-test", BaseURL: srv.URL})
	cctx, ccancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := p.Complete(cctx, request, llm.Stream{Text: func(string) { ccancel() }})
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("cancellation did not stop the stream")
	}
}

func TestAnthropicStreaming(t *testing.T) {
	tests := []struct {
		name      string
		handler   func(s sse)
		status    []int
		wantText  string
		wantCalls []llm.ToolCall
		wantUsage llm.Usage
		wantErr   string
	}{
		{
			name: "text and tool use",
			handler: func(s sse) {
				s.event("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":1}}}`)
				s.event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
				s.event("ping", `{"type":"ping"}`)
				s.event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}}`)
				s.event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"write."}}`)
				s.event("content_block_stop", `{"type":"content_block_stop","index":0}`)
				s.event("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"file_write","input":{}}}`)
				s.event("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"a"}}`)
				s.event("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":".txt\"}"}}`)
				s.event("content_block_stop", `{"type":"content_block_stop","index":1}`)
				s.event("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}`)
				s.event("message_stop", `{"type":"message_stop"}`)
			},
			wantText:  "Let me write.",
			wantCalls: []llm.ToolCall{{ID: "toolu_1", Name: "file_write", Arguments: `{"path": "a.txt"}`}},
			wantUsage: llm.Usage{InputTokens: 20, OutputTokens: 15},
		},
		{
			name:   "overloaded then success",
			status: []int{529},
			handler: func(s sse) {
				s.event("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}`)
				s.event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
				s.event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}`)
				s.event("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}`)
				s.event("message_stop", `{"type":"message_stop"}`)
			},
			wantText:  "ok",
			wantUsage: llm.Usage{InputTokens: 3, OutputTokens: 2},
		},
		{
			name: "error event mid-stream",
			handler: func(s sse) {
				s.event("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}`)
				s.event("error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
			},
			wantErr: "Overloaded",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				require.Equal(t, "/v1/messages", r.URL.Path)
				require.Equal(t, "ak-test", r.Header.Get("X-Api-Key"))
				var body struct {
					Stream   bool             `json:"stream"`
					System   []map[string]any `json:"system"`
					Messages []map[string]any `json:"messages"`
					Tools    []map[string]any `json:"tools"`
				}
				require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
				require.True(t, body.Stream)
				require.Len(t, body.System, 1)
				require.Len(t, body.Messages, 3, "user, assistant tool_use, user tool_result")
				require.Equal(t, "user", body.Messages[2]["role"])
				require.Len(t, body.Tools, 1)
				if n <= len(tc.status) {
					w.Header().Set("retry-after-ms", "10")
					w.WriteHeader(tc.status[n-1])
					_, _ = io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`)
					return
				}
				tc.handler(startSSE(w))
			}))
			defer srv.Close()
			p := llm.NewAnthropic(llm.AnthropicOptions{APIKey: "ak-test", BaseURL: srv.URL, Model: "claude-test", IdleTimeout: time.Second})
			var streamed strings.Builder
			resp, err := retries.Complete(t.Context(), p, request, llm.Stream{Text: func(s string) { streamed.WriteString(s) }}, nil)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantText, resp.Content)
			require.Equal(t, tc.wantText, streamed.String())
			if tc.wantCalls == nil {
				tc.wantCalls = []llm.ToolCall{}
			}
			require.Equal(t, tc.wantCalls, append([]llm.ToolCall{}, resp.ToolCalls...))
			require.Equal(t, tc.wantUsage, resp.Usage)
		})
	}
}
