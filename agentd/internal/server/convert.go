package server

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/store"
)

func sessionPB(s store.Session, msgs []*agentdv1.Message) *agentdv1.Session {
	out := &agentdv1.Session{Id: s.ID, Title: s.Title, CreatedAt: timestamppb.New(s.CreatedAt), OwnerId: s.OwnerID, Messages: msgs}
	if out.Messages == nil {
		out.Messages = []*agentdv1.Message{}
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
		ResumedFrom:  r.ResumedFrom,
	}
	if r.Status == store.RunWaiting {
		out.Question = r.Question
	}
	return out
}
