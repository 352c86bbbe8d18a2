package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// AnthropicOptions configures the Anthropic provider.
type AnthropicOptions struct {
	APIKey      string
	BaseURL     string
	Model       string
	MaxRetries  int
	IdleTimeout time.Duration
}

// Anthropic is a provider speaking the Messages API through the official SDK.
type Anthropic struct {
	client anthropic.Client
	opts   AnthropicOptions
}

// NewAnthropic returns the provider.
func NewAnthropic(o AnthropicOptions) *Anthropic {
	ropts := []option.RequestOption{option.WithAPIKey(o.APIKey), option.WithMaxRetries(o.MaxRetries)}
	if o.BaseURL != "" {
		ropts = append(ropts, option.WithBaseURL(o.BaseURL))
	}
	if o.Model == "" {
		o.Model = "claude-sonnet-4-5"
	}
	return &Anthropic{client: anthropic.NewClient(ropts...), opts: o}
}

// Name implements Provider.
func (*Anthropic) Name() string { return "anthropic" }

// Offline implements Provider.
func (*Anthropic) Offline() bool { return false }

func (p *Anthropic) params(req Request) anthropic.MessageNewParams {
	model := req.Model
	if model == "" {
		model = p.opts.Model
	}
	maxTokens := int64(req.MaxTokens)
	if maxTokens <= 0 {
		maxTokens = 4096
	}
	params := anthropic.MessageNewParams{Model: model, MaxTokens: maxTokens}
	if req.System != "" {
		params.System = []anthropic.TextBlockParam{{Text: req.System}}
	}
	// Consecutive tool results must travel in one user message, after the assistant's tool_use turn.
	var pending []anthropic.ContentBlockParamUnion
	flush := func() {
		if len(pending) > 0 {
			params.Messages = append(params.Messages, anthropic.NewUserMessage(pending...))
			pending = nil
		}
	}
	for _, m := range req.Messages {
		switch m.Role {
		case RoleTool:
			pending = append(pending, anthropic.NewToolResultBlock(m.ToolCallID, m.Content, m.IsError))
		case RoleUser:
			flush()
			params.Messages = append(params.Messages, anthropic.NewUserMessage(anthropic.NewTextBlock(m.Content)))
		case RoleAssistant:
			flush()
			var blocks []anthropic.ContentBlockParamUnion
			if m.Content != "" {
				blocks = append(blocks, anthropic.NewTextBlock(m.Content))
			}
			for _, c := range m.ToolCalls {
				var input any = map[string]any{}
				if json.Valid([]byte(c.Arguments)) {
					input = json.RawMessage(c.Arguments)
				}
				blocks = append(blocks, anthropic.NewToolUseBlock(c.ID, input, c.Name))
			}
			if len(blocks) == 0 {
				blocks = append(blocks, anthropic.NewTextBlock("(no output)"))
			}
			params.Messages = append(params.Messages, anthropic.NewAssistantMessage(blocks...))
		}
	}
	flush()
	for _, t := range req.Tools {
		var schema struct {
			Properties any      `json:"properties"`
			Required   []string `json:"required"`
		}
		_ = json.Unmarshal(t.Parameters, &schema)
		tool := anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{Properties: schema.Properties, Required: schema.Required}, t.Name)
		tool.OfTool.Description = anthropic.String(t.Description)
		params.Tools = append(params.Tools, tool)
	}
	return params
}

// Complete implements Provider.
func (p *Anthropic) Complete(ctx context.Context, req Request, onText func(string)) (Response, error) {
	ctx, idle, stop := newIdleTimer(ctx, p.opts.IdleTimeout)
	defer stop()
	stream := p.client.Messages.NewStreaming(ctx, p.params(req))
	defer stream.Close()
	var (
		resp  Response
		calls callAccumulator
		text  []byte
	)
	for stream.Next() {
		idle.reset()
		ev := stream.Current()
		switch ev.Type {
		case "message_start":
			resp.Model = ev.Message.Model
			resp.Usage.InputTokens = ev.Message.Usage.InputTokens + ev.Message.Usage.CacheReadInputTokens + ev.Message.Usage.CacheCreationInputTokens
			resp.Usage.OutputTokens = ev.Message.Usage.OutputTokens
		case "content_block_start":
			if ev.ContentBlock.Type == "tool_use" {
				calls.add(ev.Index, ev.ContentBlock.ID, ev.ContentBlock.Name, "")
			}
		case "content_block_delta":
			switch ev.Delta.Type {
			case "text_delta":
				text = append(text, ev.Delta.Text...)
				if onText != nil {
					onText(ev.Delta.Text)
				}
			case "input_json_delta":
				calls.add(ev.Index, "", "", ev.Delta.PartialJSON)
			}
		case "message_delta":
			if ev.Usage.OutputTokens > 0 {
				resp.Usage.OutputTokens = ev.Usage.OutputTokens
			}
		}
	}
	if err := stream.Err(); err != nil {
		var apiErr *anthropic.Error
		if errors.As(err, &apiErr) {
			var body struct {
				Error struct{ Message string } `json:"error"`
			}
			if json.Unmarshal([]byte(apiErr.RawJSON()), &body) == nil && body.Error.Message != "" {
				return Response{}, fmt.Errorf("anthropic: HTTP %d: %s", apiErr.StatusCode, body.Error.Message)
			}
		}
		return Response{}, fmt.Errorf("anthropic: %w", streamErr(ctx, err))
	}
	resp.Content = string(text)
	resp.ToolCalls = calls.result()
	return resp, nil
}
