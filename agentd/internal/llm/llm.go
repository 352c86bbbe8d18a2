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
}

// ToolCall is a model's request to run a tool. Arguments is the raw JSON text the model produced; it
// may be invalid, and the workflow reports that back to the model.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool describes a tool offered to the model.
type Tool struct {
	Name        string
	Description string
	Parameters  json.RawMessage // JSON schema of the arguments object
}

// Request is one model turn.
type Request struct {
	Agent     string // the agent speaking; the scripted provider picks its turns by it
	Model     string // empty: the provider's default
	System    string
	Messages  []Message
	Tools     []Tool
	MaxTokens int
}

// Usage is the token usage of a turn.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

// Response is a completed turn.
type Response struct {
	Content   string
	ToolCalls []ToolCall
	Usage     Usage
	Model     string
}

// Provider streams one model turn, calling onText with each piece of text as it arrives.
type Provider interface {
	Name() string
	// Offline reports a provider that answers without a model (the scripted one).
	Offline() bool
	Complete(ctx context.Context, req Request, onText func(string)) (Response, error)
}

// ErrIdleTimeout is returned when a stream sends nothing for longer than the idle timeout.
var ErrIdleTimeout = errors.New("llm: stream idle timeout")

// Price is what a model costs per million tokens, in USD.
type Price struct {
	InputPerMTok  float64
	OutputPerMTok float64
}

// Cost returns the cost of u at price p.
func (p Price) Cost(u Usage) float64 {
	return float64(u.InputTokens)*p.InputPerMTok/1e6 + float64(u.OutputTokens)*p.OutputPerMTok/1e6
}

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

// streamErr prefers the idle-timeout cause over the bare context error it produced.
func streamErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrIdleTimeout) {
		return ErrIdleTimeout
	}
	return err
}
