package llm

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// AnthropicOptions configures the Anthropic provider.
type AnthropicOptions struct {
	APIKey  string
	BaseURL string
	Model   string
	// PromptCache puts cache_control breakpoints on the tools, the system prompt and the recent
	// turns, so each turn re-reads the conversation from the cache instead of paying for it again.
	PromptCache bool
	IdleTimeout time.Duration
}

// Anthropic is a provider speaking the Messages API through the official SDK.
type Anthropic struct {
	client anthropic.Client
	opts   AnthropicOptions
}

// NewAnthropic returns the provider. The SDK's own retries are off: RetryPolicy retries whole turns
// and shows each attempt.
func NewAnthropic(o AnthropicOptions) *Anthropic {
	ropts := []option.RequestOption{option.WithAPIKey(o.APIKey), option.WithMaxRetries(0)}
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

func (p *Anthropic) model(req Request) string {
	if req.Model != "" {
		return req.Model
	}
	return p.opts.Model
}

func (p *Anthropic) maxTokens(req Request) int {
	if req.MaxTokens > 0 {
		return req.MaxTokens
	}
	return MaxOutputTokens(p.model(req), fallbackOutputCapAnthropic)
}

// Placeholders for content Anthropic refuses when empty ("text content blocks must be non-empty"):
// a tool that printed nothing, an empty user message.
const (
	noOutput     = "(no output)"
	emptyMessage = "(empty message)"
)

func nonEmpty(s, placeholder string) string {
	if strings.TrimSpace(s) == "" {
		return placeholder
	}
	return s
}

func (p *Anthropic) params(req Request) anthropic.MessageNewParams {
	params := anthropic.MessageNewParams{Model: p.model(req), MaxTokens: int64(p.maxTokens(req))}
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
			pending = append(pending, anthropic.NewToolResultBlock(m.ToolCallID, nonEmpty(m.Content, noOutput), m.IsError))
		case RoleUser:
			flush()
			params.Messages = append(params.Messages, anthropic.NewUserMessage(anthropic.NewTextBlock(nonEmpty(m.Content, emptyMessage))))
		case RoleAssistant:
			flush()
			var blocks []anthropic.ContentBlockParamUnion
			if strings.TrimSpace(m.Content) != "" {
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
				blocks = append(blocks, anthropic.NewTextBlock(noOutput))
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
	if req.RequireTool && len(req.Tools) > 0 {
		params.ToolChoice = anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}}
	}
	if p.opts.PromptCache {
		cacheBreakpoints(&params)
	}
	return params
}

// cacheBreakpoints marks the prefixes Anthropic should cache, using all four breakpoints a request
// may carry. The cache prefix runs tools → system → messages, so: the last tool (tools change least),
// the system prompt (fixed per agent), the end of the conversation (written now, read by the next
// turn), and the end of the previous request's conversation — the user message before the latest
// assistant turn — which the previous turn wrote and this one reads, whatever the tool results
// in between added.
func cacheBreakpoints(params *anthropic.MessageNewParams) {
	cc := anthropic.NewCacheControlEphemeralParam()
	if n := len(params.Tools); n > 0 {
		if c := params.Tools[n-1].GetCacheControl(); c != nil {
			*c = cc
		}
	}
	if n := len(params.System); n > 0 {
		params.System[n-1].CacheControl = cc
	}
	mark := func(i int) {
		blocks := params.Messages[i].Content
		if n := len(blocks); n > 0 {
			if c := blocks[n-1].GetCacheControl(); c != nil {
				*c = cc
			}
		}
	}
	last := len(params.Messages) - 1
	if last < 0 {
		return
	}
	mark(last)
	for i := last - 1; i > 0; i-- {
		if params.Messages[i].Role == anthropic.MessageParamRoleAssistant {
			mark(i - 1)
			break
		}
	}
}

// Complete implements Provider.
func (p *Anthropic) Complete(ctx context.Context, req Request, s Stream) (Response, error) {
	ctx, idle, stop := newIdleTimer(ctx, p.opts.IdleTimeout)
	defer stop()
	stream := p.client.Messages.NewStreaming(ctx, p.params(req))
	defer stream.Close()
	var (
		resp       = Response{MaxTokens: p.maxTokens(req)}
		calls      callAccumulator
		text       []byte
		streamed   int
		outputSeen bool
	)
	for stream.Next() {
		idle.reset()
		ev := stream.Current()
		switch ev.Type {
		case "message_start":
			u := ev.Message.Usage
			resp.Model = ev.Message.Model
			resp.Usage = Usage{InputTokens: u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens,
				CacheReadTokens: u.CacheReadInputTokens, CacheWriteTokens: u.CacheCreationInputTokens, OutputTokens: u.OutputTokens}
		case "content_block_start":
			if ev.ContentBlock.Type == "tool_use" {
				pos := calls.add(ev.Index, ev.ContentBlock.ID, ev.ContentBlock.Name, "")
				s.toolCall(ToolCallDelta{Index: pos, ID: ev.ContentBlock.ID, Name: ev.ContentBlock.Name})
			}
		case "content_block_delta":
			switch ev.Delta.Type {
			case "text_delta":
				text = append(text, ev.Delta.Text...)
				streamed += len(ev.Delta.Text)
				s.text(ev.Delta.Text)
			case "input_json_delta":
				pos := calls.add(ev.Index, "", "", ev.Delta.PartialJSON)
				streamed += len(ev.Delta.PartialJSON)
				s.toolCall(ToolCallDelta{Index: pos, Arguments: ev.Delta.PartialJSON})
			}
		case "message_delta":
			// The counts here are cumulative; newer API versions repeat the input counts too.
			u := ev.Usage
			if u.OutputTokens > 0 {
				resp.Usage.OutputTokens, outputSeen = u.OutputTokens, true
			}
			if u.InputTokens > 0 || u.CacheReadInputTokens > 0 || u.CacheCreationInputTokens > 0 {
				resp.Usage.InputTokens = u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
				resp.Usage.CacheReadTokens, resp.Usage.CacheWriteTokens = u.CacheReadInputTokens, u.CacheCreationInputTokens
			}
			if ev.Delta.StopReason != "" {
				resp.StopReason = string(ev.Delta.StopReason)
			}
		}
	}
	if err := stream.Err(); err != nil {
		if resp.Usage.InputTokens > 0 && !outputSeen {
			resp.Usage.OutputTokens = max(resp.Usage.OutputTokens, estimateTokens(streamed))
			resp.Usage.Estimated = true
		}
		return Response{Usage: resp.Usage, Model: resp.Model}, classify(ctx, "anthropic", err)
	}
	if resp.StopReason == "" {
		// A connection closed before message_delta ends the SDK's stream without an error.
		if !outputSeen {
			resp.Usage.OutputTokens = max(resp.Usage.OutputTokens, estimateTokens(streamed))
			resp.Usage.Estimated = true
		}
		return Response{Usage: resp.Usage, Model: resp.Model}, errIncomplete("anthropic")
	}
	resp.Content = string(text)
	resp.ToolCalls = calls.result()
	switch anthropic.StopReason(resp.StopReason) {
	case anthropic.StopReasonEndTurn, anthropic.StopReasonStopSequence:
		resp.Stop = StopEnd
	case anthropic.StopReasonToolUse:
		resp.Stop = StopToolUse
	case anthropic.StopReasonMaxTokens, anthropic.StopReasonModelContextWindowExceeded:
		resp.Stop = StopLength
	case anthropic.StopReasonRefusal:
		resp.Stop = StopRefusal
	default:
		resp.Stop = StopOther
	}
	return resp, nil
}
