package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// These tests drive whole runs through agentd against fake LLM APIs speaking the real OpenAI and
// Anthropic SSE wire formats, and assert what agentd sends them and what the user sees.

// fakeLLM answers the n-th model request with the n-th scripted reply and records every request body.
type fakeLLM struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	bodies  []map[string]any
	replies []func(w http.ResponseWriter)
}

func startFakeLLM(t *testing.T, replies ...func(w http.ResponseWriter)) *fakeLLM {
	f := &fakeLLM{t: t, replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		n := len(f.bodies)
		f.bodies = append(f.bodies, body)
		f.mu.Unlock()
		if n >= len(f.replies) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"message":"the fake has no reply for request `+fmt.Sprint(n+1)+`","type":"invalid_request_error"}}`)
			return
		}
		f.replies[n](w)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLLM) requests() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.bodies...)
}

func sseStart(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
}

func sseWrite(w http.ResponseWriter, lines ...string) {
	for _, l := range lines {
		_, _ = io.WriteString(w, l)
		w.(http.Flusher).Flush()
	}
}

// openAIReply streams chat-completion chunks: deltas (JSON objects), then a finish reason and usage.
func openAIReply(finish string, deltas ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		sseStart(w)
		for _, d := range deltas {
			sseWrite(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":`+d+`,"finish_reason":null}]}`+"\n\n")
		}
		sseWrite(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"`+finish+`"}]}`+"\n\n",
			`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}}`+"\n\n",
			"data: [DONE]\n\n")
	}
}

func openAICall(index int, id, name, args string) string {
	b, _ := json.Marshal(args)
	return fmt.Sprintf(`{"tool_calls":[{"index":%d,"id":%q,"type":"function","function":{"name":%q,"arguments":%s}}]}`, index, id, name, b)
}

func openAIArgs(index int, args string) string {
	b, _ := json.Marshal(args)
	return fmt.Sprintf(`{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}`, index, b)
}

func openAIText(s string) string {
	b, _ := json.Marshal(s)
	return `{"content":` + string(b) + `}`
}

// anthropicUsage is the usage of message_start in anthropicReply.
const anthropicUsage = `{"input_tokens":1000,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":1}`

// anthropicReply streams a Messages API answer: text, then tool calls (name and JSON input), then
// the stop reason.
func anthropicReply(stop, text string, calls ...[2]string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		sseStart(w)
		ev := func(name, data string) { sseWrite(w, "event: "+name+"\ndata: "+data+"\n\n") }
		ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":`+anthropicUsage+`}}`)
		i := 0
		if text != "" {
			b, _ := json.Marshal(text)
			ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+string(b)+`}}`)
			ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
			i++
		}
		for n, c := range calls {
			b, _ := json.Marshal(c[1])
			ev("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":"toolu_%d_%s","name":%q,"input":{}}}`, i, n, c[0], c[0]))
			ev("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%s}}`, i, b))
			ev("content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i))
			i++
		}
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},"usage":{"output_tokens":500}}`)
		ev("message_stop", `{"type":"message_stop"}`)
	}
}

// runAgainst runs one user message through an agentd configured by env (on top of the test
// defaults) and returns the run's events.
func runAgainst(t *testing.T, sbAddr string, env map[string]string) []*agentdv1.Event {
	t.Helper()
	e := baseEnv(t, stacktest.SharedRedis(t), sbAddr, "")
	for k, v := range env {
		e[k] = v
	}
	a := startAgentd(t, e)
	c := dial(t, a.addr)
	ctx := as(t, "alice")
	sess, err := c.sessions.CreateSession(ctx, &agentdv1.CreateSessionRequest{})
	require.NoError(t, err)
	_, err = c.chat.PostMessage(ctx, &agentdv1.PostMessageRequest{SessionId: sess.GetSession().GetId(), Content: "build it"})
	require.NoError(t, err)
	return collect(t, c, ctx, sess.GetSession().GetId(), 0, runEnded("completed", "stopped", "failed"))
}

func openAIEnv(url string) map[string]string {
	return map[string]string{"AGENTD_LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": url,
		"AGENTD_LLM_RETRY_BASE_DELAY": "10ms", "AGENTD_LLM_RETRY_MAX_DELAY": "50ms"}
}

func anthropicEnv(url string) map[string]string {
	return map[string]string{"AGENTD_LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "ak-test", "ANTHROPIC_BASE_URL": url,
		"AGENTD_MODEL": "claude-sonnet-4-5", "AGENTD_LLM_RETRY_BASE_DELAY": "10ms", "AGENTD_LLM_RETRY_MAX_DELAY": "50ms"}
}

func runStatus(evs []*agentdv1.Event) string {
	return evs[len(evs)-1].GetData().GetFields()["status"].GetStringValue()
}

// messages returns the chat-completions messages of a request body.
func messages(body map[string]any) []map[string]any {
	var out []map[string]any
	for _, m := range body["messages"].([]any) {
		out = append(out, m.(map[string]any))
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

// A file_write cut mid-JSON by finish_reason "length" is not executed; the next request tells the
// model what was cut (the call, how much arrived, the argument being written) and how to go on, and
// the user watched the arguments stream in under one message id that the final tool_call reuses.
func TestLengthCutToolCallIsExplainedToTheModel(t *testing.T) {
	stub, sbAddr := startSandboxStub(t)
	content, _ := json.Marshal(strings.Repeat("console.log('hello');\n", 400))
	args := `{"path":"app.js","content":` + string(content) + `}`
	llm := startFakeLLM(t,
		openAIReply("tool_calls", openAICall(0, "call_m1", "send_message", `{"to":"alex","content":"write app.js"}`)),
		openAIReply("length",
			openAICall(0, "call_a1", "file_write", args[:20]),
			openAIArgs(0, args[20:2000]),
			openAIArgs(0, args[2000:6000])),
		openAIReply("tool_calls", openAICall(0, "call_a2", "file_write", `{"path":"app.js","content":"short"}`)),
		openAIReply("tool_calls", openAICall(0, "call_a3", "send_message", `{"to":"mike","content":"wrote app.js"}`)),
		openAIReply("tool_calls", openAICall(0, "call_m2", "end", `{"summary":"done"}`)),
	)
	evs := runAgainst(t, sbAddr, openAIEnv(llm.srv.URL))
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))

	reqs := llm.requests()
	require.Len(t, reqs, 5)
	msgs := messages(reqs[2])
	last := msgs[len(msgs)-1]
	require.Equal(t, "tool", last["role"])
	require.Equal(t, "call_a1", last["tool_call_id"])
	obs := str(last["content"])
	for _, want := range []string{"output limit", "file_write", "NOT executed", "cut off", `"content" argument was cut after`, "app.js", "file"} {
		require.Contains(t, obs, want)
	}
	require.NotContains(t, obs, "not valid JSON")
	// The cut arguments are not sent back: the call stands with what arrived whole.
	asst := msgs[len(msgs)-2]
	require.Equal(t, `{"path":"app.js"}`, str(asst["tool_calls"].([]any)[0].(map[string]any)["function"].(map[string]any)["arguments"]))

	stub.mu.Lock()
	require.Equal(t, "short", stub.files["app.js"], "only the second, complete write ran")
	stub.mu.Unlock()

	var deltaID, finalID string
	var streamed strings.Builder
	for _, e := range evs {
		switch {
		case e.GetType() == "tool_call_delta" && e.GetTool() == "file_write" && deltaID == "":
			deltaID = e.GetMessageId()
			fallthrough
		case e.GetType() == "tool_call_delta" && e.GetMessageId() == deltaID:
			streamed.WriteString(e.GetContent())
		case e.GetType() == "tool_call" && e.GetData().GetFields()["cut"].GetBoolValue():
			finalID = e.GetMessageId()
			require.True(t, e.GetFinal())
		}
	}
	require.NotEmpty(t, deltaID, "the arguments streamed to the UI: %s", describeEvents(evs))
	require.Equal(t, deltaID, finalID, "the final tool_call replaces the streamed pieces")
	require.Contains(t, streamed.String(), "console.log", "the file's content was visible as it was written")
	cut := find(evs, "tool_result", "the output limit cut this call off")
	require.NotNil(t, cut, describeEvents(evs))
	require.True(t, cut.GetData().GetFields()["is_error"].GetBoolValue())
	require.Equal(t, "call_a1", cut.GetData().GetFields()["call_id"].GetStringValue(), "the cut call is closed in the UI")
}

// A text answer cut by the output limit is continued: the next request shows the model its answer so
// far and asks it to go on, and the user gets one message with the whole text. (The lead answered in
// text, so it is then asked once to go on; it ends.)
func TestLengthCutTextIsContinued(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	llm := startFakeLLM(t,
		anthropicReply("max_tokens", "The plan has two parts: first"),
		anthropicReply("end_turn", " the page, then the server."),
		anthropicReply("tool_use", "", [2]string{"end", `{"summary":"done"}`}),
	)
	evs := runAgainst(t, sbAddr, anthropicEnv(llm.srv.URL))
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	reqs := llm.requests()
	require.Len(t, reqs, 3)
	msgs := reqs[1]["messages"].([]any)
	prev := msgs[len(msgs)-2].(map[string]any)
	require.Equal(t, "assistant", prev["role"])
	require.Contains(t, fmt.Sprint(prev["content"]), "The plan has two parts: first")
	cont := msgs[len(msgs)-1].(map[string]any)
	require.Equal(t, "user", cont["role"])
	require.Contains(t, fmt.Sprint(cont["content"]), "cut off by the output limit")
	whole := find(evs, "message", "The plan has two parts: first the page, then the server.")
	require.NotNil(t, whole, describeEvents(evs))
	for _, e := range evs {
		if e.GetType() == "token" {
			require.Equal(t, whole.GetMessageId(), e.GetMessageId(), "both segments stream into one message")
		}
	}
}

// A refusal is a visible status and never a silent "completed": the lead's stops the run, a
// member's goes back to the lead as a failed report.
func TestRefusalIsVisible(t *testing.T) {
	t.Run("openai refusal of the lead", func(t *testing.T) {
		_, sbAddr := startSandboxStub(t)
		llm := startFakeLLM(t, openAIReply("stop", `{"refusal":"I can't help "}`, `{"refusal":"with that."}`))
		evs := runAgainst(t, sbAddr, openAIEnv(llm.srv.URL))
		st := find(evs, "status", "declined to answer: I can't help with that.")
		require.NotNil(t, st, describeEvents(evs))
		require.NotEmpty(t, st.GetMessageId())
		require.Equal(t, "stopped", runStatus(evs), describeEvents(evs))
		require.Contains(t, evs[len(evs)-1].GetContent(), "declined")
	})
	t.Run("anthropic refusal of a member", func(t *testing.T) {
		_, sbAddr := startSandboxStub(t)
		llm := startFakeLLM(t,
			anthropicReply("tool_use", "", [2]string{"send_message", `{"to":"alex","content":"do it"}`}),
			anthropicReply("refusal", ""),
			anthropicReply("tool_use", "", [2]string{"end", `{"summary":"alex declined"}`}),
		)
		evs := runAgainst(t, sbAddr, anthropicEnv(llm.srv.URL))
		require.NotNil(t, find(evs, "status", "Alex's model declined to answer"), describeEvents(evs))
		reqs := llm.requests()
		require.Len(t, reqs, 3)
		require.Contains(t, fmt.Sprint(reqs[2]["messages"]), "alex reports: failed: Alex's model declined", "the lead learns of it")
	})
	t.Run("openai content filter", func(t *testing.T) {
		_, sbAddr := startSandboxStub(t)
		llm := startFakeLLM(t, openAIReply("content_filter", openAIText("Here is how")))
		evs := runAgainst(t, sbAddr, openAIEnv(llm.srv.URL))
		require.NotNil(t, find(evs, "status", "content filter stopped Mike's answer"), describeEvents(evs))
		require.Equal(t, "stopped", runStatus(evs))
	})
}

// readableStub is the sandbox stub with files that read as empty.
type readableStub struct{ *sandboxStub }

func (readableStub) ReadFile(_ context.Context, r *sandboxdv1.ReadFileRequest) (*sandboxdv1.ReadFileResponse, error) {
	return &sandboxdv1.ReadFileResponse{Path: r.GetPath(), Content: ""}, nil
}

func startReadableStub(t *testing.T) string {
	t.Helper()
	stub := readableStub{newSandboxStub()}
	srv, _, err := grpcserver.New(grpcserver.Options{InternalToken: token, Logger: quietLog()})
	require.NoError(t, err)
	sandboxdv1.RegisterSandboxServiceServer(srv, stub)
	sandboxdv1.RegisterFileServiceServer(srv, stub)
	sandboxdv1.RegisterProcessServiceServer(srv, stub)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// Anthropic rejects empty text blocks: a tool result is never empty (an empty file reads as a
// sentence saying so), and every request carries cache_control on the tools, the system prompt and the
// recent turns.
func TestAnthropicEmptyToolOutputAndPromptCache(t *testing.T) {
	sbAddr := startReadableStub(t)
	llm := startFakeLLM(t,
		anthropicReply("tool_use", "", [2]string{"send_message", `{"to":"alex","content":"read empty.txt"}`}),
		anthropicReply("tool_use", "Reading it.", [2]string{"file_read", `{"path":"empty.txt"}`}),
		anthropicReply("tool_use", "", [2]string{"send_message", `{"to":"mike","content":"it is empty"}`}),
		anthropicReply("tool_use", "", [2]string{"end", `{"summary":"done"}`}),
	)
	evs := runAgainst(t, sbAddr, anthropicEnv(llm.srv.URL))
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	reqs := llm.requests()
	require.Len(t, reqs, 4)

	third := reqs[2]["messages"].([]any)
	result := third[len(third)-1].(map[string]any)["content"].([]any)[0].(map[string]any)
	require.Equal(t, "tool_result", result["type"])
	text := result["content"].([]any)[0].(map[string]any)["text"]
	require.Equal(t, "empty.txt is empty (0 lines).", text)

	for i, body := range reqs {
		var blocks []map[string]any
		for _, m := range body["messages"].([]any) {
			for _, b := range m.(map[string]any)["content"].([]any) {
				b := b.(map[string]any)
				blocks = append(blocks, b)
				if inner, ok := b["content"].([]any); ok {
					for _, c := range inner {
						blocks = append(blocks, c.(map[string]any))
					}
				}
			}
		}
		for _, b := range blocks {
			if b["type"] == "text" {
				require.NotEmpty(t, strings.TrimSpace(str(b["text"])), "request %d has an empty text block", i+1)
			}
		}
		require.Equal(t, 32000.0, body["max_tokens"], "claude-sonnet-4-5's default cap")

		system := body["system"].([]any)
		require.NotNil(t, system[len(system)-1].(map[string]any)["cache_control"], "request %d: system prompt cached", i+1)
		tools := body["tools"].([]any)
		require.NotNil(t, tools[len(tools)-1].(map[string]any)["cache_control"], "request %d: tools cached", i+1)
		msgs := body["messages"].([]any)
		lastBlocks := msgs[len(msgs)-1].(map[string]any)["content"].([]any)
		require.NotNil(t, lastBlocks[len(lastBlocks)-1].(map[string]any)["cache_control"], "request %d: the conversation so far is cached", i+1)
		marks := 0
		for _, b := range blocks {
			if b["cache_control"] != nil {
				marks++
			}
		}
		require.LessOrEqual(t, marks+2, 4, "request %d: at most four breakpoints", i+1)
	}
	// Alex's second request reads the prefix its first one wrote: the first request's last message is
	// marked again.
	alex := reqs[2]["messages"].([]any)
	first := alex[0].(map[string]any)["content"].([]any)
	require.NotNil(t, first[len(first)-1].(map[string]any)["cache_control"])

	// Cached tokens are accounted apart and priced at their own rates (claude-sonnet-4-5: $3 input,
	// $3.75 cache write, $0.30 cache read, $15 output per million).
	usage := find(evs, "usage", "")
	require.NotNil(t, usage)
	run := usage.GetData().GetFields()["run"].GetStructValue().GetFields()
	require.Equal(t, 4*6000.0, run["input_tokens"].GetNumberValue())
	require.Equal(t, 4*3000.0, run["cache_read_tokens"].GetNumberValue())
	require.Equal(t, 4*2000.0, run["cache_write_tokens"].GetNumberValue())
	require.InDelta(t, 4*(1000*3+2000*3.75+3000*0.30+500*15)/1e6, run["cost_usd"].GetNumberValue(), 1e-9)
	require.Contains(t, usage.GetContent(), "read from the prompt cache")
}

// o-series and GPT-5 models reject max_tokens; agentd sends them max_completion_tokens.
func TestReasoningModelGetsMaxCompletionTokens(t *testing.T) {
	for _, tc := range []struct {
		model, env string
		want       string
		cap        float64
	}{
		{model: "o3-mini", want: "max_completion_tokens", cap: 32768},
		{model: "gpt-5-mini", want: "max_completion_tokens", cap: 32768},
		{model: "gpt-4o", want: "max_tokens", cap: 16384},
		{model: "my-reasoner", env: "^my-", want: "max_completion_tokens", cap: 4096},
	} {
		t.Run(tc.model, func(t *testing.T) {
			_, sbAddr := startSandboxStub(t)
			llm := startFakeLLM(t, openAIReply("tool_calls", openAICall(0, "c1", "end", `{"summary":"Done."}`)))
			env := openAIEnv(llm.srv.URL)
			env["AGENTD_MODEL"] = tc.model
			env["AGENTD_LLM_COMPLETION_TOKENS_MODELS"] = tc.env
			evs := runAgainst(t, sbAddr, env)
			require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
			body := llm.requests()[0]
			require.Equal(t, tc.model, body["model"])
			require.Equal(t, tc.cap, body[tc.want])
			other := map[string]string{"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}[tc.want]
			require.NotContains(t, body, other)
		})
	}
}

// One overloaded_error in the middle of a stream costs one visible retry, not the run: the text the
// failed attempt streamed is taken back, and the run completes with the retried answer.
func TestMidStreamOverloadIsRetriedOnce(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	llm := startFakeLLM(t,
		func(w http.ResponseWriter) {
			sseStart(w)
			sseWrite(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_0\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":700,\"output_tokens\":1}}}\n\n",
				"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Half a thought that will be lost and replaced\"}}\n\n",
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
		},
		anthropicReply("tool_use", "All set.", [2]string{"end", `{"summary":"done"}`}),
	)
	evs := runAgainst(t, sbAddr, anthropicEnv(llm.srv.URL))
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	require.Len(t, llm.requests(), 2)

	var retries []*agentdv1.Event
	for _, e := range evs {
		if e.GetType() == "status" && e.GetData().GetFields()["retry"] != nil {
			retries = append(retries, e)
		}
	}
	require.Len(t, retries, 1, describeEvents(evs))
	require.Contains(t, retries[0].GetContent(), "Overloaded")
	require.NotEmpty(t, retries[0].GetMessageId())

	final := find(evs, "message", "All set.")
	require.NotNil(t, final, describeEvents(evs))
	require.Equal(t, "All set.", final.GetContent())
	var reset bool
	for _, e := range evs {
		if e.GetType() == "token" && e.GetMessageId() == final.GetMessageId() && e.GetFinal() {
			reset = true
			require.True(t, e.GetData().GetFields()["reset"].GetBoolValue())
			require.Empty(t, e.GetContent(), "the failed attempt's text is replaced")
		}
	}
	require.True(t, reset, "the streamed text of the failed attempt is taken back: %s", describeEvents(evs))
	// The failed attempt's input was billed, so it counts.
	run := find(evs, "usage", "").GetData().GetFields()["run"].GetStructValue().GetFields()
	require.Equal(t, 700.0+6000, run["input_tokens"].GetNumberValue())
}

// A conversation too long for the model fails at once with a typed cause; retrying cannot help.
func TestContextLengthIsNotRetried(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	llm := startFakeLLM(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`)
	})
	evs := runAgainst(t, sbAddr, openAIEnv(llm.srv.URL))
	require.Equal(t, "failed", runStatus(evs), describeEvents(evs))
	require.Len(t, llm.requests(), 1)
	require.Contains(t, evs[len(evs)-1].GetContent(), "maximum context length")
	require.Nil(t, find(evs, "status", "retrying"))
}

// "auto" with only OPENAI_BASE_URL (a local Ollama or vLLM, no key) picks the OpenAI-compatible
// provider, not the scripted one; a model without a price says so.
func TestAutoPicksOpenAICompatibleForABaseURL(t *testing.T) {
	_, sbAddr := startSandboxStub(t)
	llm := startFakeLLM(t, openAIReply("tool_calls", openAICall(0, "c1", "end", `{"summary":"Done."}`)))
	evs := runAgainst(t, sbAddr, map[string]string{"AGENTD_LLM_PROVIDER": "auto", "OPENAI_BASE_URL": llm.srv.URL, "AGENTD_MODEL": "llama3.1:8b"})
	require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
	require.Len(t, llm.requests(), 1)
	require.Equal(t, "llama3.1:8b", llm.requests()[0]["model"])
	for _, e := range evs {
		require.NotContains(t, e.GetContent(), "scripted")
	}
	require.NotNil(t, find(evs, "status", `No price is known for model "llama3.1:8b"`), describeEvents(evs))
}

// A retry takes back exactly what the failed attempt showed: nothing after a rate limit that came
// before any token, the streamed arguments of a call cut by a broken stream.
func TestRetryTakesBackWhatWasShown(t *testing.T) {
	t.Run("rate limited before the stream", func(t *testing.T) {
		_, sbAddr := startSandboxStub(t)
		llm := startFakeLLM(t,
			func(w http.ResponseWriter) {
				w.Header().Set("retry-after-ms", "20")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
			},
			openAIReply("tool_calls", openAICall(0, "c1", "end", `{"summary":"Done."}`)),
		)
		evs := runAgainst(t, sbAddr, openAIEnv(llm.srv.URL))
		require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
		retry := find(evs, "status", "retrying in 20ms (attempt 2 of 4)")
		require.NotNil(t, retry, describeEvents(evs))
		require.Equal(t, 429.0, retry.GetData().GetFields()["retry"].GetStructValue().GetFields()["http_status"].GetNumberValue())
		for _, e := range evs {
			require.False(t, e.GetData().GetFields()["reset"].GetBoolValue(), "nothing was shown, nothing is taken back: %s", describeEvents(evs))
		}
	})
	t.Run("a call's arguments streamed, then the stream broke", func(t *testing.T) {
		_, sbAddr := startSandboxStub(t)
		llm := startFakeLLM(t,
			func(w http.ResponseWriter) {
				sseStart(w)
				sseWrite(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":`+openAICall(0, "c1", "reply_to_human", `{"content":"Here is a long answ`)+`,"finish_reason":null}]}`+"\n\n",
					`data: {"error":{"message":"The server had an error while processing your request.","type":"server_error"}}`+"\n\n")
			},
			openAIReply("tool_calls", openAICall(0, "c1", "reply_to_human", `{"content":"Here is a long answer."}`)),
			openAIReply("tool_calls", openAICall(0, "c2", "end", `{}`)),
		)
		evs := runAgainst(t, sbAddr, openAIEnv(llm.srv.URL))
		require.Equal(t, "completed", runStatus(evs), describeEvents(evs))
		var reset, final *agentdv1.Event
		for _, e := range evs {
			if e.GetType() == "tool_call_delta" && e.GetFinal() {
				reset = e
			}
			if e.GetType() == "tool_call" && e.GetTool() == "reply_to_human" {
				final = e
			}
		}
		require.NotNil(t, reset, describeEvents(evs))
		require.True(t, reset.GetData().GetFields()["reset"].GetBoolValue())
		require.Empty(t, reset.GetContent())
		require.NotNil(t, final)
		require.Equal(t, reset.GetMessageId(), final.GetMessageId(), "the retried call streams into the same place")
		require.NotNil(t, find(evs, "message", "Here is a long answer."))
		require.NotNil(t, find(evs, "status", "server had an error"))
	})
}
