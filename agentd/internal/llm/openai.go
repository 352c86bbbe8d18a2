package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// MaxRetries is how often a request failing with 408/429/5xx or a connection error is retried
	// (with exponential backoff, honouring Retry-After) before the stream starts.
	MaxRetries  int
	IdleTimeout time.Duration
}

// OpenAI is a provider speaking the chat-completions API through the official SDK.
type OpenAI struct {
	client openai.Client
	opts   OpenAIOptions
}

// NewOpenAI returns the provider.
func NewOpenAI(o OpenAIOptions) *OpenAI {
	ropts := []option.RequestOption{option.WithMaxRetries(o.MaxRetries)}
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

func (p *OpenAI) params(req Request) openai.ChatCompletionNewParams {
	model := req.Model
	if model == "" {
		model = p.opts.Model
	}
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
	if req.MaxTokens > 0 {
		params.MaxTokens = openai.Int(int64(req.MaxTokens))
	}
	for _, t := range req.Tools {
		var schema map[string]any
		_ = json.Unmarshal(t.Parameters, &schema)
		params.Tools = append(params.Tools, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: t.Name, Description: openai.String(t.Description), Parameters: schema,
		}))
	}
	return params
}

// Complete implements Provider.
func (p *OpenAI) Complete(ctx context.Context, req Request, onText func(string)) (Response, error) {
	ctx, idle, stop := newIdleTimer(ctx, p.opts.IdleTimeout)
	defer stop()
	stream := p.client.Chat.Completions.NewStreaming(ctx, p.params(req))
	defer stream.Close()
	var (
		resp  Response
		calls callAccumulator
		text  []byte
	)
	for stream.Next() {
		idle.reset()
		chunk := stream.Current()
		if chunk.Model != "" {
			resp.Model = chunk.Model
		}
		if chunk.Usage.PromptTokens > 0 || chunk.Usage.CompletionTokens > 0 {
			resp.Usage = Usage{InputTokens: chunk.Usage.PromptTokens, OutputTokens: chunk.Usage.CompletionTokens}
		}
		for _, ch := range chunk.Choices {
			if d := ch.Delta.Content; d != "" {
				text = append(text, d...)
				if onText != nil {
					onText(d)
				}
			}
			for _, tc := range ch.Delta.ToolCalls {
				calls.add(tc.Index, tc.ID, tc.Function.Name, tc.Function.Arguments)
			}
		}
	}
	if err := stream.Err(); err != nil {
		var apiErr *openai.Error
		if errors.As(err, &apiErr) && apiErr.Message != "" {
			return Response{}, fmt.Errorf("openai: HTTP %d: %s", apiErr.StatusCode, apiErr.Message)
		}
		return Response{}, fmt.Errorf("openai: %w", streamErr(ctx, err))
	}
	resp.Content = string(text)
	resp.ToolCalls = calls.result()
	return resp, nil
}
