// Package events builds the entries of a session's durable event log: what the browser receives over
// WebSocket/SSE and what a reconnecting client replays with after_seq. An entry is the public
// agentdv1.Event itself — built once here, stored as it is, sent as it is — so no twin type can drift
// from the wire. The chat history is derived from the same events (HistoryEntry).
package events

import (
	"encoding/json"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

// Types of events. The first six are the seed product's; the rest describe runs, plans and tasks.
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
	// TypeCheckpoint announces a snapshot of the workspace taken after a step that changed files:
	// data carries its id, its parent's, the files changed and the call's id; the REST API lists,
	// diffs and restores it.
	TypeCheckpoint = "checkpoint"
)

// Senders of messages and events. They stay lowercase; the agent field carries the display name.
const (
	SenderUser   = "user"
	SenderMike   = "mike"
	SenderAgent  = "agent"
	SenderStatus = "status"
)

// lead is the agent whose messages the chat attributes to the "mike" sender.
const lead = "mike"

// Display is an agent's name as clients show it and as the frontend's type declares it: "alex" →
// "Alex". Internally agents are named in lowercase.
func Display(agent string) string {
	if agent == "" {
		return ""
	}
	return strings.ToUpper(agent[:1]) + strings.ToLower(agent[1:])
}

// SenderOf is the sender of what an agent says: the lead speaks as "mike", every member as "agent".
func SenderOf(agent string) string {
	if strings.EqualFold(agent, lead) {
		return SenderMike
	}
	return SenderAgent
}

// Scope is where the events of one session, and of one of its runs when RunID is set, go.
type Scope struct {
	SessionID string
	RunID     string
}

// New returns an event of typ said by agent ("" for none) with the given sender, stamped now.
func (s Scope) New(typ, sender, agent, content string) *agentdv1.Event {
	ev := &agentdv1.Event{Type: typ, Sender: sender, Agent: Display(agent), Content: content,
		SessionId: s.SessionID, Timestamp: timestamppb.Now()}
	if s.RunID != "" {
		rid := s.RunID
		ev.RunId = &rid
	}
	return ev
}

// Message is a chat message (final) with its id; it is also the history entry of that id.
func (s Scope) Message(id, sender, agent, content string) *agentdv1.Event {
	ev := s.New(TypeMessage, sender, agent, content)
	ev.MessageId, ev.Final = id, true
	return ev
}

// Said is a message an agent said to the user, under a new id.
func (s Scope) Said(agent, content string) *agentdv1.Event {
	return s.Message(uuid.NewString(), SenderOf(agent), agent, content)
}

// Status is a status line of the chat: its own message id and final, as every line the chat shows,
// and kept in the history (sender "status") so a reload shows it too.
func (s Scope) Status(agent, text string, data map[string]any) *agentdv1.Event {
	ev := s.New(TypeStatus, SenderStatus, agent, text)
	ev.MessageId, ev.Final, ev.Data = uuid.NewString(), true, Data(data)
	return ev
}

// Error is an error line of the chat; like a status, it has a message id and stays in the history.
func (s Scope) Error(agent, text string, data map[string]any) *agentdv1.Event {
	ev := s.Status(agent, text, data)
	ev.Type = TypeError
	return ev
}

// Tool is an event about a tool call of agent (tool_result, file_change…): the tool and its invoker
// are set.
func (s Scope) Tool(typ, agent, tool, content string, data map[string]any) *agentdv1.Event {
	ev := s.New(typ, SenderOf(agent), agent, content)
	ev.Data = Data(data)
	if tool != "" {
		ev.Tool = &tool
	}
	if agent != "" {
		inv := Display(agent)
		ev.Invoker = &inv
	}
	return ev
}

// ToolCall is the final tool_call event of a call: under the message id its arguments streamed
// with, carrying them whole.
func (s Scope) ToolCall(agent, tool, messageID, args string, data map[string]any) *agentdv1.Event {
	ev := s.Tool(TypeToolCall, agent, tool, args, data)
	if messageID == "" {
		messageID = uuid.NewString()
	}
	ev.MessageId, ev.Final = messageID, true
	return ev
}

// Data turns a payload into the event's structured data. Anything JSON can encode is accepted
// (slices of strings, nested maps, numbers of any type): the payload goes through JSON, so nothing
// is dropped for want of a conversion. Nil or empty gives nil.
func Data(m map[string]any) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	if s, err := structpb.NewStruct(m); err == nil {
		return s
	}
	b, err := json.Marshal(m)
	if err != nil {
		// Only a value JSON cannot encode (a channel, a func) ends here: a programming error.
		panic("events: payload is not JSON: " + err.Error())
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		panic("events: payload is not a JSON object: " + err.Error())
	}
	return s
}

// HistoryEntry is the chat-history entry an event stands for: every message, and every status and
// error line (sender "status"), so that a reload shows what the live chat showed. Other events
// (tokens, tool calls, plans…) are not history.
func HistoryEntry(ev *agentdv1.Event) (*agentdv1.Message, bool) {
	switch ev.GetType() {
	case TypeMessage, TypeStatus, TypeError:
	default:
		return nil, false
	}
	if ev.GetMessageId() == "" {
		return nil, false
	}
	m := &agentdv1.Message{Id: ev.GetMessageId(), SessionId: ev.GetSessionId(), Sender: ev.GetSender(),
		Content: ev.GetContent(), Timestamp: ev.GetTimestamp()}
	if ev.GetType() != TypeMessage {
		m.Sender = SenderStatus
	}
	if ev.GetAgent() != "" {
		a := ev.GetAgent()
		m.Agent = &a
	}
	return m, true
}

// Encoding of what the store keeps: protojson with the proto field names, the same shape the
// gateway sends (and the shape the log had before events were proto, so older logs still read).
var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// Encode returns the stored form of an event or a history entry.
func Encode(m proto.Message) ([]byte, error) { return marshal.Marshal(m) }

// DecodeEvent reads a stored event.
func DecodeEvent(b []byte) (*agentdv1.Event, error) {
	ev := &agentdv1.Event{}
	return ev, unmarshal.Unmarshal(b, ev)
}

// DecodeMessage reads a stored history entry.
func DecodeMessage(b []byte) (*agentdv1.Message, error) {
	m := &agentdv1.Message{}
	return m, unmarshal.Unmarshal(b, m)
}
