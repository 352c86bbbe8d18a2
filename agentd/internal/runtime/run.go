package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
)

// Streamed pieces are coalesced into one event per message: token text at 48 bytes or 150 ms,
// whichever comes first; tool-call arguments, which run to whole files, at 2 KiB or 250 ms, so a
// file being written shows up a few times a second without one event per model token.
const (
	tokenBytes       = 48
	tokenInterval    = 150 * time.Millisecond
	toolArgsBytes    = 2048
	toolArgsInterval = 250 * time.Millisecond
)

// run is one execution of a queued run on this replica. It owns what the execution holds — the
// lease that fences every write into the session, the buffer of streamed pieces — and every way the
// execution ends (finished, waiting, failed, handed back). It is the workflow's Host.
type run struct {
	rt     *Runtime
	store  *store.Store
	lease  store.Lease
	scope  events.Scope
	record store.Run
	log    *slog.Logger

	mu       sync.Mutex
	partType string // events.TypeToken or events.TypeToolCallDelta
	partMsg  string
	partWho  string
	partTool string
	partBuf  []byte
	partSent time.Time
}

func (rt *Runtime) newRun(l store.Lease, log *slog.Logger) *run {
	return &run{rt: rt, store: rt.store, lease: l, scope: events.Scope{SessionID: l.SessionID, RunID: l.RunID}, log: log}
}

// Emit implements workflow.Host.
func (r *run) Emit(ctx context.Context, ev *agentdv1.Event) error {
	r.flush(ctx)
	_, err := r.store.Append(ctx, ev, r.lease)
	return err
}

// Token implements workflow.Host.
func (r *run) Token(ctx context.Context, messageID, agent, text string) {
	r.partial(ctx, events.TypeToken, messageID, agent, "", text)
}

// ToolCallDelta implements workflow.Host.
func (r *run) ToolCallDelta(ctx context.Context, messageID, agent, tool, args string) {
	r.partial(ctx, events.TypeToolCallDelta, messageID, agent, tool, args)
}

func (r *run) partial(ctx context.Context, typ, messageID, agent, tool, text string) {
	r.mu.Lock()
	if r.partMsg != messageID || r.partType != typ {
		r.mu.Unlock()
		r.flush(ctx)
		r.mu.Lock()
		r.partType, r.partMsg, r.partWho, r.partTool, r.partSent = typ, messageID, agent, tool, time.Now()
	}
	if tool != "" {
		r.partTool = tool
	}
	r.partBuf = append(r.partBuf, text...)
	size, every := tokenBytes, tokenInterval
	if typ == events.TypeToolCallDelta {
		size, every = toolArgsBytes, toolArgsInterval
	}
	due := len(r.partBuf) >= size || time.Since(r.partSent) >= every
	r.mu.Unlock()
	if due {
		r.flush(ctx)
	}
}

func (r *run) flush(ctx context.Context) {
	r.mu.Lock()
	if len(r.partBuf) == 0 {
		r.mu.Unlock()
		return
	}
	var ev *agentdv1.Event
	if r.partType == events.TypeToolCallDelta {
		ev = r.scope.Tool(events.TypeToolCallDelta, r.partWho, r.partTool, string(r.partBuf), map[string]any{"partial": true})
	} else {
		ev = r.scope.New(r.partType, events.SenderOf(r.partWho), r.partWho, string(r.partBuf))
	}
	ev.MessageId = r.partMsg
	r.partBuf = r.partBuf[:0]
	r.partSent = time.Now()
	r.mu.Unlock()
	// Best effort: a lost piece is replaced by the final event carrying the whole text.
	_, _ = r.store.Append(ctx, ev, r.lease)
}

// Checkpoint implements workflow.Host: the state's head and what the step appended to its
// conversations, in one fenced script.
func (r *run) Checkpoint(ctx context.Context, st *workflow.State, u workflow.Usage) error {
	head, deltas, undo, err := st.Commit()
	if err != nil {
		return fmt.Errorf("runtime: encode checkpoint: %w", err)
	}
	cds := make([]store.ConvDelta, len(deltas))
	for i, d := range deltas {
		cds[i] = store.ConvDelta{Key: d.Key, Expect: d.Expect, Entries: d.Messages, Drop: d.Drop}
	}
	if err := r.store.Checkpoint(ctx, r.lease, head, cds, storeUsage(u)); err != nil {
		undo()
		return err
	}
	return nil
}

func storeUsage(u workflow.Usage) store.Usage {
	return store.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CostUSD: u.CostUSD,
		CacheReadTokens: u.CacheReadTokens, CacheWriteTokens: u.CacheWriteTokens}
}

// BeginTool implements workflow.Host.
func (r *run) BeginTool(ctx context.Context, key, tool string) (bool, workflow.ToolRecord, error) {
	started, prev, err := r.store.BeginTool(ctx, r.lease, key, tool)
	return started, toolRecord(prev), err
}

func toolRecord(rec store.ToolRecord) workflow.ToolRecord {
	return workflow.ToolRecord{Done: rec.State == "done", Output: rec.Result, IsError: rec.Error}
}

// EndTool implements workflow.Host.
func (r *run) EndTool(ctx context.Context, key, tool string, rec workflow.ToolRecord) error {
	// Recorded even when the run was cancelled meanwhile: the effect happened.
	return r.store.EndTool(context.WithoutCancel(ctx), r.lease, key, store.ToolRecord{Tool: tool, Result: rec.Output, Error: rec.IsError})
}

// Inbox implements workflow.Host.
func (r *run) Inbox(ctx context.Context, from int) ([]string, error) {
	return r.store.Inbox(ctx, r.lease.SessionID, r.lease.RunID, from)
}

func (r *run) wrun() workflow.Run {
	return workflow.Run{SessionID: r.lease.SessionID, OwnerID: r.record.OwnerID, RunID: r.lease.RunID}
}

// execute runs the workflow and records how it ended. It returns whether the queue entry is done
// (false when this replica is shutting down and leaves the run to another one).
func (r *run) execute(ctx context.Context) bool {
	bg := context.WithoutCancel(ctx)
	rec, err := r.store.GetRun(ctx, r.lease.SessionID, r.lease.RunID)
	if err != nil {
		r.log.Warn("loading the run failed", "err", err)
		return errors.Is(err, store.ErrNotFound)
	}
	r.record = rec
	if rec.Cancel {
		r.finish(bg, store.RunCancelled, "", r.scope.Status("", "Run cancelled.", map[string]any{"status": store.RunCancelled}))
		return true
	}
	st, err := r.state(ctx)
	if err != nil {
		if errors.Is(err, errUnreadable) {
			r.log.Error("the run's checkpoint is unreadable", "err", err)
			r.finish(bg, store.RunFailed, "unreadable checkpoint",
				r.scope.Error("", "The run's saved state is unreadable; it cannot continue.", map[string]any{"status": store.RunFailed}))
			return true
		}
		return r.failed(ctx, err, nil)
	}
	if st.WaitingCall != "" && rec.Answer != "" {
		st.Answer = rec.Answer
	}
	for {
		res, err := r.rt.engine.Execute(ctx, r, r.wrun(), st)
		r.flush(bg)
		if err != nil {
			r.reportUsage(bg, st.UsageEstimated)
			return r.failed(ctx, err, st)
		}
		switch res.Outcome {
		case workflow.Waiting:
			r.reportUsage(bg, st.UsageEstimated)
			ev := r.scope.Status("", "Waiting for your answer.", map[string]any{"status": store.RunWaiting, "question": res.Reason})
			if _, err := r.store.FinishRunAsking(bg, r.lease, store.RunWaiting, "", res.Reason, ev); err != nil {
				r.log.Warn("recording the run's wait failed", "err", err)
			}
			return true
		case workflow.Stopped:
			r.reportUsage(bg, st.UsageEstimated)
			r.conclude(bg, st, store.RunStopped, res.Reason)
			ev := r.scope.Status("", "Run stopped: "+res.Reason+". Send a message to continue it.", map[string]any{"status": store.RunStopped, "reason": res.Reason})
			r.finish(bg, store.RunStopped, res.Reason, ev)
			return true
		}
		// The lead ended the run. A message the user posted meanwhile keeps it going: the lead reads
		// it at its next turn.
		if unread, err := r.Inbox(ctx, st.Inbox); err == nil && len(unread) > 0 {
			continue
		}
		r.reportUsage(bg, st.UsageEstimated)
		r.conclude(bg, st, store.RunCompleted, "")
		_, err = r.store.CompleteRun(bg, r.lease, st.Inbox, r.runEvent(store.RunCompleted))
		if errors.Is(err, store.ErrInboxUnread) {
			continue
		}
		if err != nil {
			r.log.Warn("recording the run's end failed", "status", store.RunCompleted, "err", err)
			return true
		}
		r.log.Info("run finished", "status", store.RunCompleted)
		runsFinished.Add(bg, 1, metric.WithAttributes(attribute.String("status", store.RunCompleted)))
		return true
	}
}

// conclude marks what the run leaves open in its plan.
func (r *run) conclude(ctx context.Context, st *workflow.State, status, reason string) {
	if st == nil {
		return
	}
	if err := r.rt.engine.Conclude(ctx, r, r.wrun(), st, status, reason); err != nil {
		r.log.Warn("marking the plan's open tasks failed", "err", err)
	}
}

// failed classifies how a run's execution broke off; ctx is the run's context, whose cause says
// whether it was cancelled, lost or handed back.
func (r *run) failed(ctx context.Context, err error, st *workflow.State) bool {
	bg := context.WithoutCancel(ctx)
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errCancelled):
		r.conclude(bg, st, store.RunCancelled, "")
		r.finish(bg, store.RunCancelled, "", r.scope.Status("", "Run cancelled.", map[string]any{"status": store.RunCancelled}))
		return true
	case errors.Is(cause, errLeaseLost), errors.Is(err, store.ErrLeaseLost):
		return false // another replica owns the run; its entry is its business
	case errors.Is(err, store.ErrNotFound):
		return true // the session was deleted under the run
	case ctx.Err() != nil:
		// This replica is shutting down: give the run up so another replica resumes it at once.
		_ = r.store.ReleaseLease(bg, r.lease)
		r.log.Info("run handed back for another replica", "cause", cause)
		return false
	}
	r.log.Warn("run failed", "err", err)
	msg := "The run failed: " + err.Error()
	if !errors.Is(err, workflow.ErrProvider) {
		msg = "The run failed because of an internal error."
	}
	r.conclude(bg, st, store.RunFailed, err.Error())
	msg += " Send a message to continue it."
	r.finish(bg, store.RunFailed, err.Error(), r.scope.Error("", msg, map[string]any{"status": store.RunFailed}))
	return true
}

// finish records the run's end with its closing event, which carries the final status.
func (r *run) finish(ctx context.Context, status, errText string, ev *agentdv1.Event) {
	if _, err := r.store.FinishRun(ctx, r.lease, status, errText, ev); err != nil {
		r.log.Warn("recording the run's end failed", "status", status, "err", err)
		return
	}
	r.log.Info("run finished", "status", status)
	runsFinished.Add(ctx, 1, metric.WithAttributes(attribute.String("status", status)))
}

func (r *run) runEvent(status string) *agentdv1.Event {
	ev := r.scope.New(events.TypeRun, events.SenderStatus, "", status)
	ev.Data = events.Data(map[string]any{"status": status})
	return ev
}

// reportUsage says what the run and the session have cost so far. estimated marks counts that are
// not all the provider's own (a broken stream's, or the scripted provider's, which has no tokens).
func (r *run) reportUsage(ctx context.Context, estimated bool) {
	rec, err := r.store.GetRun(ctx, r.lease.SessionID, r.lease.RunID)
	if err != nil {
		return
	}
	sess, err := r.store.GetSession(ctx, r.record.OwnerID, r.lease.SessionID)
	if err != nil {
		return
	}
	text := fmt.Sprintf("Run usage: %d input + %d output tokens, $%.4f (session: $%.4f).", rec.InputTokens, rec.OutputTokens, rec.CostUSD, sess.CostUSD)
	if rec.CacheReadTokens > 0 || rec.CacheWriteTokens > 0 {
		text = fmt.Sprintf("Run usage: %d input tokens (%d read from the prompt cache, %d written to it) + %d output tokens, $%.4f (session: $%.4f).",
			rec.InputTokens, rec.CacheReadTokens, rec.CacheWriteTokens, rec.OutputTokens, rec.CostUSD, sess.CostUSD)
	}
	if estimated {
		text += " Token counts are partly estimated."
	}
	usage := func(in, out, cacheRead, cacheWrite int64, cost float64) map[string]any {
		return map[string]any{"input_tokens": in, "output_tokens": out, "cost_usd": cost,
			"cache_read_tokens": cacheRead, "cache_write_tokens": cacheWrite}
	}
	ev := r.scope.New(events.TypeUsage, events.SenderStatus, "", text)
	ev.Data = events.Data(map[string]any{
		"run":       usage(rec.InputTokens, rec.OutputTokens, rec.CacheReadTokens, rec.CacheWriteTokens, rec.CostUSD),
		"session":   usage(sess.InputTokens, sess.OutputTokens, sess.CacheReadTokens, sess.CacheWriteTokens, sess.CostUSD),
		"estimated": estimated,
	})
	_ = r.Emit(ctx, ev)
}
