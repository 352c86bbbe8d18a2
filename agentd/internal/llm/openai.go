package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// OpenAIOptions configures the OpenAI-compatible provider.
type OpenAIOptions struct {
	APIKey  string
	BaseURL string // empty: api.openai.com; set it for DeepSeek, Ollama, vLLM, OpenRouter…
	Model   string
	// CompletionTokensModels matches further models that take max_completion_tokens instead of
	// max_tokens, beyond the o-series and GPT-5 onwards (nil: none).
	CompletionTokensModels *regexp.Regexp
	IdleTimeout            time.Duration
}

// OpenAI is a provider speaking the chat-completions API through the official SDK.
type OpenAI struct {
	client openai.Client
	opts   OpenAIOptions
}

// NewOpenAI returns the provider. The SDK's own retries are off: RetryPolicy retries whole turns
// and shows each attempt.
func NewOpenAI(o OpenAIOptions) *OpenAI {
	ropts := []option.RequestOption{option.WithMaxRetries(0), option.WithMiddleware(watchDone)}
	if o.APIKey != "" {
		ropts = append(ropts, option.WithAPIKey(o.APIKey))
	} else {
		ropts = append(ropts, option.WithAPIKey("unused")) // local servers (Ollama, vLLM) take none
	}
	if o.BaseURL != "" {
		ropts = append(ropts, option.WithBaseURL(o.BaseURL))
	}
	if o.Model == "" {
		o.Model = "gpt-4o-mini"
	}
	return &OpenAI{client: openai.NewClient(ropts...), opts: o}
}

// Name implements Provider.
func (*OpenAI) Name() string { return "openai" }

// Offline implements Provider.
func (*OpenAI) Offline() bool { return false }

func (p *OpenAI) model(req Request) string {
	if req.Model != "" {
		return req.Model
	}
	return p.opts.Model
}

func (p *OpenAI) maxTokens(req Request) int {
	if req.MaxTokens > 0 {
		return req.MaxTokens
	}
	return MaxOutputTokens(p.model(req), fallbackOutputCapOpenAI)
}

func (p *OpenAI) params(req Request) openai.ChatCompletionNewParams {
	model := p.model(req)
	msgs := []openai.ChatCompletionMessageParamUnion{}
	if req.System != "" {
		msgs = append(msgs, openai.SystemMessage(req.System))
	}
	for _, m := range req.Messages {
		switch m.Role {
		case RoleUser:
			msgs = append(msgs, openai.UserMessage(m.Content))
		case RoleTool:
			msgs = append(msgs, openai.ToolMessage(m.Content, m.ToolCallID))
		case RoleAssistant:
			a := openai.ChatCompletionAssistantMessageParam{}
			if m.Content != "" {
				a.Content.OfString = openai.String(m.Content)
			}
			for _, c := range m.ToolCalls {
				a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
						ID:       c.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: c.Name, Arguments: c.Arguments},
					},
				})
			}
			msgs = append(msgs, openai.ChatCompletionMessageParamUnion{OfAssistant: &a})
		}
	}
	params := openai.ChatCompletionNewParams{
		Model:         model,
		Messages:      msgs,
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	// Reasoning models and GPT-5 onwards reject max_tokens; older models and most
	// OpenAI-compatible servers know only max_tokens.
	if n := int64(p.maxTokens(req)); usesCompletionTokens(model, p.opts.CompletionTokensModels) {
		params.MaxCompletionTokens = openai.Int(n)
	} else {
		params.MaxTokens = openai.Int(n)
	}
	for _, t := range req.Tools {
		var schema map[string]any
		_ = json.Unmarshal(t.Parameters, &schema)
		params.Tools = append(params.Tools, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: t.Name, Description: openai.String(t.Description), Parameters: schema,
		}))
	}
	if req.RequireTool && len(req.Tools) > 0 {
		params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String(string(openai.ChatCompletionToolChoiceOptionAutoRequired))}
	}
	return params
}

// Complete implements Provider.
func (p *OpenAI) Complete(ctx context.Context, req Request, s Stream) (Response, error) {
	ctx, idle, stop := newIdleTimer(ctx, p.opts.IdleTimeout)
	defer stop()
	done := new(atomic.Bool)
	ctx = context.WithValue(ctx, doneKey{}, done)
	stream := p.client.Chat.Completions.NewStreaming(ctx, p.params(req))
	defer stream.Close()
	var (
		resp     = Response{MaxTokens: p.maxTokens(req)}
		calls    callAccumulator
		text     []byte
		refusal  []byte
		streamed int  // bytes of output received, for estimating a broken stream's usage
		started  bool // whether the provider began generating (and so bills the request)
		reported bool // whether the usage chunk arrived
	)
	for stream.Next() {
		idle.reset()
		started = true
		chunk := stream.Current()
		if chunk.Model != "" {
			resp.Model = chunk.Model
		}
		if u := chunk.Usage; u.PromptTokens > 0 || u.CompletionTokens > 0 {
			reported = true
			resp.Usage = Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens,
				CacheReadTokens: u.PromptTokensDetails.CachedTokens, CacheWriteTokens: u.PromptTokensDetails.CacheWriteTokens}
			// DeepSeek reports its context cache in fields of its own.
			if f, ok := u.JSON.ExtraFields["prompt_cache_hit_tokens"]; ok && resp.Usage.CacheReadTokens == 0 {
				var n int64
				if json.Unmarshal([]byte(f.Raw()), &n) == nil {
					resp.Usage.CacheReadTokens = n
				}
			}
		}
		for _, ch := range chunk.Choices {
			if d := ch.Delta.Content; d != "" {
				text = append(text, d...)
				streamed += len(d)
				s.text(d)
			}
			if d := ch.Delta.Refusal; d != "" {
				refusal = append(refusal, d...)
				streamed += len(d)
			}
			for _, tc := range ch.Delta.ToolCalls {
				pos := calls.add(tc.Index, tc.ID, tc.Function.Name, tc.Function.Arguments)
				streamed += len(tc.Function.Arguments)
				s.toolCall(ToolCallDelta{Index: pos, ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
			}
			if ch.FinishReason != "" {
				resp.StopReason = ch.FinishReason
			}
		}
	}
	if err := stream.Err(); err != nil {
		if started && !reported {
			resp.Usage = Usage{InputTokens: estimateTokens(requestSize(req)), OutputTokens: estimateTokens(streamed), Estimated: true}
		}
		return Response{Usage: resp.Usage, Model: resp.Model}, classify(ctx, "openai", err)
	}
	if resp.StopReason == "" && !reported && !done.Load() {
		// The SDK ends a stream the same way on [DONE] and on a connection closed early; a stream
		// that did not say why it stopped, how much it used, nor that it was done, was cut off.
		resp.Usage = Usage{InputTokens: estimateTokens(requestSize(req)), OutputTokens: estimateTokens(streamed), Estimated: started}
		return Response{Usage: resp.Usage, Model: resp.Model}, errIncomplete("openai")
	}
	resp.Content = string(text)
	resp.Refusal = string(refusal)
	resp.ToolCalls = calls.result()
	switch resp.StopReason {
	case "length":
		resp.Stop = StopLength
	case "content_filter":
		resp.Stop = StopContentFilter
	case "tool_calls", "function_call":
		resp.Stop = StopToolUse
	case "stop", "":
		resp.Stop = StopEnd
		if len(resp.ToolCalls) > 0 {
			resp.Stop = StopToolUse // some compatible servers end tool turns with "stop"
		}
	default:
		resp.Stop = StopOther
	}
	if resp.Refusal != "" && !resp.Stop.Refused() {
		resp.Stop, resp.StopReason = StopRefusal, "refusal"
	}
	return resp, nil
}

// doneKey carries, in a request's context, the flag watchDone sets when the stream ends with [DONE].
type doneKey struct{}

// watchDone lets Complete tell a stream that ended with its [DONE] line from one whose connection
// closed early, which the SDK does not distinguish; it matters for servers that send neither a finish
// reason nor usage.
func watchDone(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	resp, err := next(req)
	if flag, ok := req.Context().Value(doneKey{}).(*atomic.Bool); ok && err == nil && resp != nil && resp.Body != nil {
		resp.Body = &doneWatcher{ReadCloser: resp.Body, done: flag, tail: []byte("\n")}
	}
	return resp, err
}

type doneWatcher struct {
	io.ReadCloser
	done *atomic.Bool
	tail []byte // the end of what was read before, so a marker split across reads is still seen
}

func (w *doneWatcher) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if n > 0 && !w.done.Load() {
		w.tail = append(w.tail, p[:n]...)
		// A raw newline precedes an SSE line; inside JSON text a newline is escaped, so this never
		// matches model output.
		if bytes.Contains(w.tail, []byte("\ndata: [DONE]")) || bytes.Contains(w.tail, []byte("\ndata:[DONE]")) {
			w.done.Store(true)
		}
		w.tail = w.tail[:copy(w.tail, w.tail[max(len(w.tail)-16, 0):])]
	}
	return n, err
}
