package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
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

// Checkpoint implements workflow.Host.
func (r *run) Checkpoint(ctx context.Context, st *workflow.State, u workflow.Usage) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("runtime: encode checkpoint: %w", err)
	}
	return r.store.Checkpoint(ctx, r.lease, b, storeUsage(u))
}

func storeUsage(u workflow.Usage) store.Usage {
	return store.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CostUSD: u.CostUSD,
		CacheReadTokens: u.CacheReadTokens, CacheWriteTokens: u.CacheWriteTokens}
}

// BeginTool implements workflow.Host.
func (r *run) BeginTool(ctx context.Context, key, tool string) (bool, workflow.ToolRecord, error) {
	started, prev, err := r.store.BeginTool(ctx, r.lease, key, tool)
	return started, workflow.ToolRecord{Done: prev.State == "done", Output: prev.Result, IsError: prev.Error}, err
}

// EndTool implements workflow.Host.
func (r *run) EndTool(ctx context.Context, key, tool string, rec workflow.ToolRecord) error {
	// Recorded even when the run was cancelled meanwhile: the effect happened.
	return r.store.EndTool(context.WithoutCancel(ctx), r.lease, key, store.ToolRecord{Tool: tool, Result: rec.Output, Error: rec.IsError})
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
	var st *workflow.State
	if len(rec.Checkpoint) > 0 {
		st = &workflow.State{}
		if err := json.Unmarshal(rec.Checkpoint, st); err != nil {
			r.log.Error("the run's checkpoint is unreadable", "err", err)
			r.finish(bg, store.RunFailed, "unreadable checkpoint",
				r.scope.Error("", "The run's saved state is unreadable; it cannot continue.", map[string]any{"status": store.RunFailed}))
			return true
		}
		if rec.Attempts > 1 && st.WaitingCall == "" {
			_ = r.Emit(ctx, r.scope.Status("", fmt.Sprintf("Run resumed from its last checkpoint (attempt %d).", rec.Attempts), nil))
		}
	} else {
		st = workflow.NewState(registry.LeadName, r.withHistory(ctx))
		if err := r.Emit(ctx, r.runEvent("started")); err != nil {
			return r.failed(ctx, err)
		}
		if r.rt.opts.ProviderNotice != "" {
			_ = r.Emit(ctx, r.scope.Status("", r.rt.opts.ProviderNotice, nil))
		}
	}
	if st.WaitingCall != "" && rec.Answer != "" {
		st.Answer = rec.Answer
	}
	res, err := r.rt.engine.Execute(ctx, r, workflow.Run{SessionID: r.lease.SessionID, OwnerID: rec.OwnerID, RunID: r.lease.RunID}, st)
	r.flush(bg)
	r.reportUsage(bg, st.UsageEstimated)
	if err != nil {
		return r.failed(ctx, err)
	}
	switch res.Outcome {
	case workflow.Waiting:
		ev := r.scope.Status("", "Waiting for your answer.", map[string]any{"status": store.RunWaiting, "question": res.Reason})
		if _, err := r.store.FinishRunAsking(bg, r.lease, store.RunWaiting, "", res.Reason, ev); err != nil {
			r.log.Warn("recording the run's wait failed", "err", err)
		}
	case workflow.Stopped:
		ev := r.scope.Status("", "Run stopped: "+res.Reason+".", map[string]any{"status": store.RunStopped, "reason": res.Reason})
		r.finish(bg, store.RunStopped, res.Reason, ev)
	default:
		r.finish(bg, store.RunCompleted, "", r.runEvent(store.RunCompleted))
	}
	return true
}

// failed classifies how a run's execution broke off; ctx is the run's context, whose cause says
// whether it was cancelled, lost or handed back.
func (r *run) failed(ctx context.Context, err error) bool {
	bg := context.WithoutCancel(ctx)
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errCancelled):
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

// withHistory gives the lead the session's earlier conversation along with the new request, so a
// follow-up ("now make it blue") makes sense.
func (r *run) withHistory(ctx context.Context) string {
	const keep, maxLen = 20, 600
	msgs, err := r.store.Messages(ctx, r.lease.SessionID)
	if err != nil {
		return r.record.Prompt
	}
	var earlier []*agentdv1.Message
	for _, m := range msgs {
		if m.GetId() == r.record.MessageID {
			break
		}
		earlier = append(earlier, m)
	}
	if len(earlier) == 0 {
		return r.record.Prompt
	}
	if len(earlier) > keep {
		earlier = earlier[len(earlier)-keep:]
	}
	var b strings.Builder
	b.WriteString("Conversation so far in this session:\n")
	for _, m := range earlier {
		who := m.GetSender()
		if m.GetAgent() != "" {
			who = m.GetAgent()
		}
		text := m.GetContent()
		if len(text) > maxLen {
			text = text[:maxLen] + "…"
		}
		fmt.Fprintf(&b, "[%s] %s\n", who, text)
	}
	b.WriteString("\nNew request from the user:\n")
	b.WriteString(r.record.Prompt)
	return b.String()
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
