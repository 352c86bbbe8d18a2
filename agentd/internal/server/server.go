package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
	"github.com/mgx-ai/mgx/pkg/authn"
)

// Options configures the services.
type Options struct {
	// LaunchTimeout bounds the sandbox provisioning a session creation waits for.
	LaunchTimeout time.Duration
	// RequeueAfter is how long a run may stay queued before a refused message re-enqueues it.
	RequeueAfter time.Duration
	// TailBlock is how often a following stream re-reads the log without being woken (and checks
	// that its session still exists).
	TailBlock time.Duration
	// MaxSessionsPerUser bounds how many sessions a user has; 0 means no bound.
	MaxSessionsPerUser int
}

// Server implements agentd's gRPC services.
type Server struct {
	agentdv1.UnimplementedSessionServiceServer
	agentdv1.UnimplementedChatServiceServer
	agentdv1.UnimplementedEventServiceServer
	agentdv1.UnimplementedAgentServiceServer

	store     *store.Store
	hub       *store.Hub
	sandboxes sandboxdv1.SandboxServiceClient
	registry  *registry.Registry
	log       *slog.Logger
	opts      Options
}

// New returns the services over st, calling sandboxd through sandboxes.
func New(st *store.Store, hub *store.Hub, sandboxes sandboxdv1.SandboxServiceClient, reg *registry.Registry, log *slog.Logger, opts Options) *Server {
	if opts.LaunchTimeout <= 0 {
		opts.LaunchTimeout = 60 * time.Second
	}
	if opts.RequeueAfter <= 0 {
		opts.RequeueAfter = 30 * time.Second
	}
	if opts.TailBlock <= 0 {
		opts.TailBlock = 5 * time.Second
	}
	return &Server{store: st, hub: hub, sandboxes: sandboxes, registry: reg, log: log, opts: opts}
}

// Register registers every service on srv.
func (s *Server) Register(srv grpc.ServiceRegistrar) {
	agentdv1.RegisterSessionServiceServer(srv, s)
	agentdv1.RegisterChatServiceServer(srv, s)
	agentdv1.RegisterEventServiceServer(srv, s)
	agentdv1.RegisterAgentServiceServer(srv, s)
}

func user(ctx context.Context) (string, error) {
	id, ok := authn.UserID(ctx)
	if !ok {
		return "", errNoUser
	}
	return id, nil
}

// CreateSession creates the session, then provisions its sandbox as the owner. When sandboxd cannot
// provision it the session is removed again and the call fails with Unavailable: the contract
// promises a session with a sandbox, and a half-made session would only confuse the user.
func (s *Server) CreateSession(ctx context.Context, req *agentdv1.CreateSessionRequest) (*agentdv1.CreateSessionResponse, error) {
	sess, _, err := s.createWithSandbox(ctx, req.GetTitle())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &agentdv1.CreateSessionResponse{Session: sessionPB(sess, nil)}, nil
}

func (s *Server) createWithSandbox(ctx context.Context, title string) (store.Session, *sandboxdv1.LaunchSandboxResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return store.Session{}, nil, err
	}
	if title == "" {
		title = "New session"
	}
	sess := store.Session{ID: uuid.NewString(), Title: title, OwnerID: uid, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.store.CreateSession(ctx, sess, s.opts.MaxSessionsPerUser); err != nil {
		if errors.Is(err, store.ErrSessionLimit) {
			err = &sessionLimitError{limit: s.opts.MaxSessionsPerUser}
		}
		return store.Session{}, nil, err
	}
	launched, err := s.launch(ctx, uid, sess.ID)
	if err != nil {
		if derr := s.store.DeleteSession(context.WithoutCancel(ctx), uid, sess.ID); derr != nil {
			s.log.WarnContext(ctx, "removing a session whose sandbox failed", "session", sess.ID, "err", derr)
		}
		return store.Session{}, nil, err
	}
	return sess, launched, nil
}

func (s *Server) launch(ctx context.Context, uid, sid string) (*sandboxdv1.LaunchSandboxResponse, error) {
	lctx, cancel := context.WithTimeout(authn.WithUser(ctx, uid), s.opts.LaunchTimeout)
	defer cancel()
	resp, err := s.sandboxes.LaunchSandbox(lctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	if err != nil {
		if c := status.Code(err); c == codes.Unavailable || c == codes.DeadlineExceeded && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %w", errSandboxUnavailable, err)
		}
		return nil, err
	}
	return resp, nil
}

// ListSessions implements SessionService.
func (s *Server) ListSessions(ctx context.Context, _ *agentdv1.ListSessionsRequest) (*agentdv1.ListSessionsResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	list, err := s.store.ListSessions(ctx, uid)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &agentdv1.ListSessionsResponse{Sessions: make([]*agentdv1.Session, 0, len(list))}
	for _, sess := range list {
		out.Sessions = append(out.Sessions, sessionPB(sess, nil))
	}
	return out, nil
}

// GetSession implements SessionService.
func (s *Server) GetSession(ctx context.Context, req *agentdv1.GetSessionRequest) (*agentdv1.GetSessionResponse, error) {
	sess, msgs, err := s.sessionWithMessages(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &agentdv1.GetSessionResponse{Session: sessionPB(sess, msgs)}, nil
}

func (s *Server) sessionWithMessages(ctx context.Context, id string) (store.Session, []*agentdv1.Message, error) {
	uid, err := user(ctx)
	if err != nil {
		return store.Session{}, nil, err
	}
	sess, err := s.store.GetSession(ctx, uid, id)
	if err != nil {
		return store.Session{}, nil, err
	}
	msgs, err := s.store.Messages(ctx, id)
	return sess, msgs, err
}

// ListMessages implements SessionService.
func (s *Server) ListMessages(ctx context.Context, req *agentdv1.ListMessagesRequest) (*agentdv1.ListMessagesResponse, error) {
	_, msgs, err := s.sessionWithMessages(ctx, req.GetSessionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &agentdv1.ListMessagesResponse{Messages: msgs}, nil
}

// DeleteSession deletes the session and has sandboxd destroy and forget its sandbox. The sandbox goes
// first: should sandboxd fail, the session stays and the user can retry.
func (s *Server) DeleteSession(ctx context.Context, req *agentdv1.DeleteSessionRequest) (*agentdv1.DeleteSessionResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if _, err := s.store.GetSession(ctx, uid, req.GetId()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	// Stop a running run first so it does not keep using the sandbox.
	if rid, _ := s.store.ActiveRun(ctx, req.GetId()); rid != "" {
		_, _ = s.store.CancelRun(ctx, uid, req.GetId(), rid, cancelEvent(req.GetId(), rid))
	}
	_, err = s.sandboxes.DestroySandbox(authn.WithUser(ctx, uid), &sandboxdv1.DestroySandboxRequest{SessionId: req.GetId(), Forget: true})
	if err != nil && status.Code(err) != codes.NotFound {
		if status.Code(err) == codes.Unavailable {
			err = fmt.Errorf("%w: %w", errSandboxUnavailable, err)
		}
		return nil, toStatus(ctx, s.log, err)
	}
	if err := s.store.DeleteSession(ctx, uid, req.GetId()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &agentdv1.DeleteSessionResponse{}, nil
}

// LaunchSandbox ensures a session (creating one when no id is given) and its running sandbox.
func (s *Server) LaunchSandbox(ctx context.Context, req *agentdv1.LaunchSandboxRequest) (*agentdv1.LaunchSandboxResponse, error) {
	var (
		sess     store.Session
		launched *sandboxdv1.LaunchSandboxResponse
		err      error
	)
	if req.GetSessionId() == "" {
		sess, launched, err = s.createWithSandbox(ctx, req.GetTitle())
	} else {
		var uid string
		if uid, err = user(ctx); err == nil {
			if sess, err = s.store.GetSession(ctx, uid, req.GetSessionId()); err == nil {
				launched, err = s.launch(ctx, uid, sess.ID)
			}
		}
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	msgs, err := s.store.Messages(ctx, sess.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	sb := launched.GetSandbox()
	logs := launched.GetLogs()
	if logs == nil {
		logs = []string{}
	}
	return &agentdv1.LaunchSandboxResponse{
		Session: sessionPB(sess, msgs), ContainerId: sb.GetContainerId(), ContainerName: sb.GetContainerName(),
		WorkspacePath: sb.GetWorkspacePath(), Logs: logs,
	}, nil
}

// PostMessage stores the message and starts a run for it in the background, answers the run waiting
// in ask_human, or — while a run is queued or running — delivers it to that run, whose lead reads it
// at its next turn (201 with the active run's id, steered). A new run continues the previous one when
// that one stopped, failed or was cancelled.
func (s *Server) PostMessage(ctx context.Context, req *agentdv1.PostMessageRequest) (*agentdv1.PostMessageResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	msg := userMessage(req.GetSessionId(), req.GetContent())
	sid := req.GetSessionId()
	outcome, runID, err := s.store.StartRun(ctx, uid, msg, uuid.NewString())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	user, _ := events.HistoryEntry(msg)
	if outcome == store.Steered {
		s.requeueIfStranded(ctx, sid, runID)
		return &agentdv1.PostMessageResponse{User: user, Responses: []*agentdv1.Message{}, RunId: runID, Steered: true}, nil
	}
	if err := s.store.Enqueue(ctx, sid, runID); err != nil {
		// The queue lives in another slot than the session, so the two writes cannot be one script.
		// A run nobody will execute must not hold the session: cancel a run we just started.
		if outcome == store.Started {
			_, _ = s.store.CancelRun(context.WithoutCancel(ctx), uid, sid, runID, cancelEvent(sid, runID))
		}
		return nil, toStatus(ctx, s.log, err)
	}
	return &agentdv1.PostMessageResponse{User: user, Responses: []*agentdv1.Message{}, RunId: runID}, nil
}

// requeueIfStranded re-enqueues a run that has been queued for long: its queue entry may have been
// lost (the replica that stored it died before XADD); the next message to it notices. A duplicate entry is harmless — only the lease
// holder executes a run — so erring on the side of re-enqueueing is safe.
func (s *Server) requeueIfStranded(ctx context.Context, sid, rid string) {
	if rid == "" {
		return
	}
	run, err := s.store.GetRun(ctx, sid, rid)
	if err != nil || run.Status != store.RunQueued || time.Since(run.UpdatedAt) < s.opts.RequeueAfter {
		return
	}
	if err := s.store.Enqueue(ctx, sid, rid); err == nil {
		s.log.WarnContext(ctx, "re-enqueued a run left queued", "session", sid, "run", rid)
	}
}

func cancelEvent(sid, rid string) *agentdv1.Event {
	return events.Scope{SessionID: sid, RunID: rid}.Status("", "Run cancelled.", map[string]any{"status": store.RunCancelled})
}

// userMessage is the user's chat message as the log records it.
func userMessage(sid, content string) *agentdv1.Event {
	return events.Scope{SessionID: sid}.Message(uuid.NewString(), events.SenderUser, "", content)
}

// CancelRun implements ChatService.
func (s *Server) CancelRun(ctx context.Context, req *agentdv1.CancelRunRequest) (*agentdv1.CancelRunResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if _, err := s.store.GetSession(ctx, uid, req.GetSessionId()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	rid, err := s.store.ActiveRun(ctx, req.GetSessionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &agentdv1.CancelRunResponse{SessionId: req.GetSessionId()}
	if rid == "" {
		return out, nil
	}
	res, err := s.store.CancelRun(ctx, uid, req.GetSessionId(), rid, cancelEvent(req.GetSessionId(), rid))
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if res != store.CancelInactive {
		out.RunId, out.Cancelled = rid, true
	}
	return out, nil
}

// StreamEvents replays the session's log after after_seq, then follows it. Sequences are the stream
// ids, so replay and tail meet without gap or duplicate on any replica. Waiting costs no Redis
// connection: the replica's Hub wakes the stream when the log grows.
func (s *Server) StreamEvents(req *agentdv1.StreamEventsRequest, stream grpc.ServerStreamingServer[agentdv1.StreamEventsResponse]) error {
	eventStreams.Add(stream.Context(), 1)
	defer eventStreams.Add(context.WithoutCancel(stream.Context()), -1)
	ctx := stream.Context()
	uid, err := user(ctx)
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	sid := req.GetSessionId()
	// Ownership comes from the session's own record, never its history; a probe asks no more.
	if _, err := s.store.GetSession(ctx, uid, sid); err != nil {
		return toStatus(ctx, s.log, err)
	}
	if req.GetProbe() {
		return nil
	}
	// Follow before replaying, so an event appended in between wakes the tail.
	wake, stop := s.hub.Follow(ctx, sid)
	defer stop()
	poll := time.NewTicker(s.opts.TailBlock)
	defer poll.Stop()
	after := req.GetAfterSeq()
	for {
		// Drain everything after the last sequence sent: the replay at first, then what woke us.
		for {
			evs, err := s.store.EventsAfter(ctx, sid, after, 512)
			if err != nil {
				return toStatus(ctx, s.log, err)
			}
			if len(evs) == 0 {
				break
			}
			for _, ev := range evs {
				if err := stream.Send(&agentdv1.StreamEventsResponse{Event: ev}); err != nil {
					return err
				}
				after = ev.GetSequence()
			}
		}
		select {
		case <-ctx.Done():
			return toStatus(ctx, s.log, ctx.Err())
		case <-wake:
		case <-poll.C:
			// End the stream if the session was deleted meanwhile.
			if ok, err := s.store.SessionExists(ctx, sid); err != nil {
				return toStatus(ctx, s.log, err)
			} else if !ok {
				return toStatus(ctx, s.log, store.ErrNotFound)
			}
		}
	}
}

// ListAgents implements AgentService.
func (s *Server) ListAgents(ctx context.Context, _ *agentdv1.ListAgentsRequest) (*agentdv1.ListAgentsResponse, error) {
	out := &agentdv1.ListAgentsResponse{}
	for _, a := range s.registry.All() {
		out.Agents = append(out.Agents, &agentdv1.Agent{Name: a.Name, Title: a.Title, Description: a.Description, Model: a.Model, Tools: a.Tools})
	}
	return out, nil
}

// AnswerQuestion implements ChatService.
func (s *Server) AnswerQuestion(ctx context.Context, req *agentdv1.AnswerQuestionRequest) (*agentdv1.AnswerQuestionResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	msg := userMessage(req.GetSessionId(), req.GetContent())
	runID, err := s.store.Answer(ctx, uid, msg)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if err := s.store.Enqueue(ctx, req.GetSessionId(), runID); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	user, _ := events.HistoryEntry(msg)
	return &agentdv1.AnswerQuestionResponse{User: user, RunId: runID}, nil
}

// GetRun implements ChatService.
func (s *Server) GetRun(ctx context.Context, req *agentdv1.GetRunRequest) (*agentdv1.GetRunResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	sess, err := s.store.GetSession(ctx, uid, req.GetSessionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	rid, err := s.store.LatestRun(ctx, sess.ID)
	if err == nil && rid == "" {
		err = errNoRun
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	run, err := s.store.GetRun(ctx, sess.ID, rid)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &agentdv1.GetRunResponse{Run: runPB(run, sess)}, nil
}

// GetPlan implements ChatService. The plan lives in the checkpoint of the session's latest run, which
// carries it over from run to run.
func (s *Server) GetPlan(ctx context.Context, req *agentdv1.GetPlanRequest) (*agentdv1.GetPlanResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	sess, err := s.store.GetSession(ctx, uid, req.GetSessionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &agentdv1.Plan{SessionId: sess.ID, Tasks: []*agentdv1.Task{}}
	rid, head, updated, err := s.store.LatestCheckpoint(ctx, sess.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if len(head) > 0 {
		tasks, finished, err := workflow.PlanOf(head)
		if err != nil {
			return nil, toStatus(ctx, s.log, fmt.Errorf("server: read plan of run %s: %w", rid, err))
		}
		out.RunId, out.Finished, out.UpdatedAt = rid, finished, timestamppb.New(updated)
		for _, t := range tasks {
			deps := t.DependsOn
			if deps == nil {
				deps = []string{}
			}
			out.Tasks = append(out.Tasks, &agentdv1.Task{Id: t.ID, Title: t.Title, Assignee: t.Assignee, Status: t.Status, Note: t.Note, DependsOn: deps})
		}
	}
	return &agentdv1.GetPlanResponse{Plan: out}, nil
}
