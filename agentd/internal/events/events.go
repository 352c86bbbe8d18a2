// Package events defines the entries of a session's durable event log: what
// the browser receives over WebSocket/SSE and what a reconnecting client
// replays with after_seq.
package events

import "time"

// Types of events. The first six are the seed product's; the rest describe
// runs, plans and tasks.
const (
	TypeMessage    = "message"
	TypeToken      = "token"
	TypeStatus     = "status"
	TypeError      = "error"
	TypeToolCall   = "tool_call"
	TypeToolResult = "tool_result"
	TypeFileChange = "file_change"
	TypeRun        = "run"
	TypePlan       = "plan"
	TypeTask       = "task"
	TypeUsage      = "usage"
	// TypeToolCallDelta streams a tool call's arguments as the model writes them, as token does
	// for text: the pieces share the call's message_id and append; the tool_call event with the
	// same message_id (final) carries the whole arguments and replaces them.
	TypeToolCallDelta = "tool_call_delta"
	// TypeToolOutput streams a running tool's output (a command's stdout or stderr, data.stream) as
	// it is produced: pieces of one call share a message_id and append.
	TypeToolOutput = "tool_output"
	// TypeArtifact announces a file a tool stored for the user (a preview screenshot, a chart):
	// data carries its id, type, size and the REST path to download it.
	TypeArtifact = "artifact"
)

// Senders of messages and events.
const (
	SenderUser   = "user"
	SenderMike   = "mike"
	SenderAgent  = "agent"
	SenderStatus = "status"
)

// Event is one entry of the log. Sequence is assigned by the store when the
// event is appended, never by the producer.
type Event struct {
	Type      string         `json:"type"`
	Sender    string         `json:"sender,omitempty"`
	Agent     string         `json:"agent,omitempty"`
	Content   string         `json:"content,omitempty"`
	MessageID string         `json:"message_id,omitempty"`
	Final     bool           `json:"final,omitempty"`
	SessionID string         `json:"session_id"`
	Timestamp time.Time      `json:"timestamp"`
	Sequence  uint32         `json:"sequence,omitempty"`
	Paths     []string       `json:"paths,omitempty"`
	Tool      string         `json:"tool,omitempty"`
	Invoker   string         `json:"invoker,omitempty"`
	RunID     string         `json:"run_id,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
}

// Message is one entry of a session's chat history. Every message is also a
// "message" event with the same id, appended in the same atomic step.
type Message struct {
	ID        string    `json:"id"`
	SessionID string    `json:"session_id"`
	Sender    string    `json:"sender"`
	Content   string    `json:"content"`
	Timestamp time.Time `json:"timestamp"`
	Agent     string    `json:"agent,omitempty"`
	RunID     string    `json:"run_id,omitempty"`
}

// Event returns the "message" event that records m in the log.
func (m Message) Event() Event {
	return Event{
		Type:      TypeMessage,
		Sender:    m.Sender,
		Agent:     m.Agent,
		Content:   m.Content,
		MessageID: m.ID,
		Final:     true,
		SessionID: m.SessionID,
		Timestamp: m.Timestamp,
		RunID:     m.RunID,
	}
}
