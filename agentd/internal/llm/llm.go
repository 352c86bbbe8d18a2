// Package llm talks to language models. Every provider — OpenAI-compatible, Anthropic, and the
// scripted offline one — implements Provider, so the workflow never knows which one it drives.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Roles of messages.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Message is one entry of a conversation.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"` // for RoleTool
	ToolName   string     `json:"tool_name,omitempty"`    // for RoleTool
	IsError    bool       `json:"is_error,omitempty"`     // for RoleTool
	// Pinned belongs to the workflow (providers neither read nor send it): the message — a task, the
	// user's words — survives condensation verbatim.
	Pinned bool `json:"pinned,omitempty"`
}

// ToolCall is a model's request to run a tool. Arguments is the raw JSON text the model produced; it
// may be invalid, and the workflow reports that back to the model.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	// The fields below belong to the workflow; providers neither read nor send them.

	// MessageID is the id of the chat events that show this call: its arguments streamed as they
	// arrive and the final tool_call event that replaces them.
	MessageID string `json:"message_id,omitempty"`
	// Cut, when set, is why the call must not run — the output limit cut its arguments — and is what
	// the model is told instead of a result.
	Cut string `json:"cut,omitempty"`
}

// Tool describes a tool offered to the model.
type Tool struct {
	Name        string
	Description string
	Parameters  json.RawMessage // JSON schema of the arguments object
}

// Request is one model turn.
type Request struct {
	Agent    string // the agent speaking; the scripted provider picks its turns by it
	Model    string // empty: the provider's default
	System   string
	Messages []Message
	Tools    []Tool
	// MaxTokens caps the answer; 0 means the model's default cap (MaxOutputTokens).
	MaxTokens int
	// RequireTool makes the model call a tool rather than answer in text (OpenAI tool_choice
	// "required", Anthropic tool_choice "any"); ignored without tools.
	RequireTool bool
}

// Usage is the token usage of a turn. InputTokens counts every input token, cached or not; the
// cache counts say how many of them were read from or written to the provider's prompt cache, which
// are billed at their own rates.
type Usage struct {
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	CacheReadTokens  int64 `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int64 `json:"cache_write_tokens,omitempty"`
	// Estimated marks counts the provider did not report: a stream that broke before its usage
	// arrived, or the scripted provider, which has no tokens at all.
	Estimated bool `json:"estimated,omitempty"`
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		InputTokens: u.InputTokens + v.InputTokens, OutputTokens: u.OutputTokens + v.OutputTokens,
		CacheReadTokens: u.CacheReadTokens + v.CacheReadTokens, CacheWriteTokens: u.CacheWriteTokens + v.CacheWriteTokens,
		Estimated: u.Estimated || v.Estimated,
	}
}

// Total is the number of tokens counted against a run's token budget.
func (u Usage) Total() int64 { return u.InputTokens + u.OutputTokens }

// Stop says why a model stopped answering, the same for every provider.
type Stop string

// Stops. StopLength means the answer was cut by the output cap; StopRefusal and StopContentFilter
// mean the model or its provider declined to answer.
const (
	StopEnd           Stop = "end"
	StopToolUse       Stop = "tool_use"
	StopLength        Stop = "length"
	StopRefusal       Stop = "refusal"
	StopContentFilter Stop = "content_filter"
	StopOther         Stop = "other"
)

// Refused reports a stop where the model or its provider declined to answer.
func (s Stop) Refused() bool { return s == StopRefusal || s == StopContentFilter }

// Response is a completed turn.
type Response struct {
	Content   string
	ToolCalls []ToolCall
	Usage     Usage
	Model     string
	Stop      Stop
	// StopReason is the provider's own word for Stop ("length", "max_tokens", "refusal"…).
	StopReason string
	// Refusal is the model's explanation when it declined (OpenAI's refusal deltas).
	Refusal string
	// MaxTokens is the output cap the turn ran with.
	MaxTokens int
}

// ToolCallDelta is a piece of a tool call as it streams: Index is the call's position in the
// turn's ToolCalls; ID and Name arrive with the first piece, Arguments is the new text.
type ToolCallDelta struct {
	Index     int
	ID        string
	Name      string
	Arguments string
}

// Stream receives a turn's progress as it arrives. Either function may be nil.
type Stream struct {
	Text     func(text string)
	ToolCall func(d ToolCallDelta)
}

func (s Stream) text(t string) {
	if s.Text != nil && t != "" {
		s.Text(t)
	}
}

func (s Stream) toolCall(d ToolCallDelta) {
	if s.ToolCall != nil {
		s.ToolCall(d)
	}
}

// Provider streams one model turn. On error the Response still carries the usage of what was
// streamed before the failure, because providers bill it.
type Provider interface {
	Name() string
	// Offline reports a provider that answers without a model (the scripted one).
	Offline() bool
	Complete(ctx context.Context, req Request, s Stream) (Response, error)
}

// ErrIdleTimeout is returned when a stream sends nothing for longer than the idle timeout.
var ErrIdleTimeout = errors.New("llm: stream idle timeout")

// idleTimer cancels a stream's context when no event arrived for d. Only events the SDK surfaces reset
// it, so SSE keep-alive comments cannot keep a stalled stream alive forever.
type idleTimer struct {
	t *time.Timer
	d time.Duration
}

func newIdleTimer(ctx context.Context, d time.Duration) (context.Context, *idleTimer, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if d <= 0 {
		return ctx, &idleTimer{}, func() { cancel(nil) }
	}
	it := &idleTimer{d: d}
	it.t = time.AfterFunc(d, func() { cancel(ErrIdleTimeout) })
	return ctx, it, func() { it.t.Stop(); cancel(nil) }
}

func (it *idleTimer) reset() {
	if it.t != nil {
		it.t.Reset(it.d)
	}
}

// estimateTokens guesses a token count from text length (≈4 bytes a token for English and code),
// for usage a provider never reported.
func estimateTokens(n int) int64 { return int64(n+3) / 4 }

// requestSize is the byte size of what a request sends, for estimating its input tokens.
func requestSize(req Request) int {
	n := len(req.System)
	for _, m := range req.Messages {
		n += len(m.Content)
		for _, c := range m.ToolCalls {
			n += len(c.Name) + len(c.Arguments)
		}
	}
	for _, t := range req.Tools {
		n += len(t.Name) + len(t.Description) + len(t.Parameters)
	}
	return n
}
