package server

import (
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/store"
)

func sessionPB(s store.Session, msgs []events.Message) *agentdv1.Session {
	out := &agentdv1.Session{Id: s.ID, Title: s.Title, CreatedAt: timestamppb.New(s.CreatedAt), OwnerId: s.OwnerID}
	for _, m := range msgs {
		out.Messages = append(out.Messages, messagePB(m))
	}
	if out.Messages == nil {
		out.Messages = []*agentdv1.Message{}
	}
	return out
}

func messagePB(m events.Message) *agentdv1.Message {
	out := &agentdv1.Message{Id: m.ID, SessionId: m.SessionID, Sender: m.Sender, Content: m.Content, Timestamp: timestamppb.New(m.Timestamp)}
	if m.Agent != "" {
		out.Agent = &m.Agent
	}
	return out
}

func eventPB(e events.Event) *agentdv1.Event {
	out := &agentdv1.Event{
		Type: e.Type, Sender: e.Sender, Agent: e.Agent, Content: e.Content, MessageId: e.MessageID, Final: e.Final,
		SessionId: e.SessionID, Timestamp: timestamppb.New(e.Timestamp), Sequence: e.Sequence, Paths: e.Paths,
	}
	if e.Tool != "" {
		out.Tool = &e.Tool
	}
	if e.Invoker != "" {
		out.Invoker = &e.Invoker
	}
	if e.RunID != "" {
		out.RunId = &e.RunID
	}
	if len(e.Data) > 0 {
		if s, err := structpb.NewStruct(e.Data); err == nil {
			out.Data = s
		}
	}
	return out
}

func runPB(r store.Run, sess store.Session) *agentdv1.Run {
	out := &agentdv1.Run{
		Id: r.ID, SessionId: r.SessionID, Status: r.Status, Attempts: int32(r.Attempts), Error: r.Error,
		Active:    r.Status == store.RunQueued || r.Status == store.RunRunning || r.Status == store.RunWaiting,
		Usage:     &agentdv1.Usage{InputTokens: uint32(r.InputTokens), OutputTokens: uint32(r.OutputTokens), CostUsd: r.CostUSD},
		CreatedAt: timestamppb.New(r.CreatedAt), UpdatedAt: timestamppb.New(r.UpdatedAt),
		SessionUsage: &agentdv1.Usage{InputTokens: uint32(sess.InputTokens), OutputTokens: uint32(sess.OutputTokens), CostUsd: sess.CostUSD},
	}
	if r.Status == store.RunWaiting {
		out.Question = r.Question
	}
	return out
}
