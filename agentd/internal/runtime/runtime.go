// Package runtime executes queued runs: it consumes the run queue (a Redis stream with a consumer
// group), holds a lease on each run it executes, renews it, checkpoints through the workflow, stops
// runs on cancel, and takes over runs whose replica died.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
)

var (
	errCancelled = errors.New("run cancelled by the user")
	errLeaseLost = errors.New("run lease lost to another replica")
)

// Options configures the runtime.
type Options struct {
	// Consumer names this replica in the queue's consumer group; it must be unique per replica.
	Consumer string
	// LeaseTTL is how long a run stays owned by a replica that stopped renewing; takeover happens
	// after it.
	LeaseTTL time.Duration
	// MaxConcurrent bounds the runs this replica executes at once.
	MaxConcurrent int
	// ProviderNotice, when set, is said in the session at the start of every run (the scripted
	// provider announces itself).
	ProviderNotice string
}

// Runtime executes runs.
type Runtime struct {
	store  *store.Store
	engine *workflow.Engine
	log    *slog.Logger
	opts   Options

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // run id → its cancel
	wg      sync.WaitGroup
	slots   chan struct{}
}

// New returns a runtime.
func New(st *store.Store, engine *workflow.Engine, log *slog.Logger, opts Options) *Runtime {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 4
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	return &Runtime{store: st, engine: engine, log: log, opts: opts, running: map[string]context.CancelCauseFunc{},
		slots: make(chan struct{}, opts.MaxConcurrent)}
}

// Run consumes the queue until ctx ends, then stops the runs it executes, releasing their leases so
// another replica resumes them from their last checkpoint.
func (r *Runtime) Run(ctx context.Context) error {
	if err := r.store.EnsureQueue(ctx); err != nil {
		return err
	}
	sub := r.store.Client().Subscribe(ctx, store.CancelChannel)
	defer sub.Close()
	go r.cancellations(ctx, sub.Channel())
	go r.claimer(ctx)
	for ctx.Err() == nil {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		// A short block: the read is not interrupted by ctx, so it bounds how long a shutdown waits.
		entries, err := r.store.ReadQueue(ctx, r.opts.Consumer, 1, time.Second)
		if err != nil {
			<-r.slots
			if ctx.Err() == nil {
				r.log.Warn("reading the run queue failed", "err", err)
				if strings.Contains(err.Error(), "NOGROUP") {
					// The stream was deleted (e.g. a flushed Redis): recreate the group.
					_ = r.store.EnsureQueue(ctx)
				}
				sleep(ctx, time.Second)
			}
			continue
		}
		if len(entries) == 0 {
			<-r.slots
			continue
		}
		r.start(ctx, entries[0])
	}
	r.wg.Wait()
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// start handles an entry in the background; the caller holds a slot, which the handler frees.
func (r *Runtime) start(ctx context.Context, e store.QueueEntry) {
	r.wg.Go(func() {
		defer func() { <-r.slots }()
		r.handle(ctx, e)
	})
}

// claimer takes over queue entries whose replica stopped acknowledging them; the lease decides
// whether the run is really orphaned.
func (r *Runtime) claimer(ctx context.Context) {
	interval := r.opts.LeaseTTL / 2
	for {
		sleep(ctx, interval)
		if ctx.Err() != nil {
			return
		}
		entries, err := r.store.ClaimIdle(ctx, r.opts.Consumer, r.opts.LeaseTTL, 16)
		if err != nil {
			r.log.Warn("claiming idle runs failed", "err", err)
			continue
		}
		for _, e := range entries {
			select {
			case r.slots <- struct{}{}:
				r.start(ctx, e)
			case <-ctx.Done():
				return
			}
		}
	}
}

func (r *Runtime) cancellations(ctx context.Context, ch <-chan *redisMessage) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			_, runID, _ := strings.Cut(m.Payload, "/")
			r.mu.Lock()
			cancel := r.running[runID]
			r.mu.Unlock()
			if cancel != nil {
				cancel(errCancelled)
			}
		}
	}
}

func (r *Runtime) handle(ctx context.Context, e store.QueueEntry) {
	r.mu.Lock()
	_, busy := r.running[e.RunID]
	r.mu.Unlock()
	if busy {
		return
	}
	lease := store.Lease{SessionID: e.SessionID, RunID: e.RunID, Token: r.opts.Consumer + "/" + uuid.NewString()}
	ok, status, err := r.store.AcquireLease(ctx, lease, r.opts.LeaseTTL)
	if err != nil {
		r.log.Warn("acquiring a run lease failed", "run", e.RunID, "err", err)
		return
	}
	if !ok {
		if status != "held" {
			// Finished, cancelled, waiting for the user, or deleted: nothing left to do here.
			_ = r.store.Ack(ctx, e.ID)
		}
		return
	}
	log := r.log.With("session", e.SessionID, "run", e.RunID, "replica", r.opts.Consumer)
	// Which replica executes which run is what an operator needs to follow a takeover.
	log.Info("executing run")
	runsExecuting.Add(ctx, 1)
	defer runsExecuting.Add(context.WithoutCancel(ctx), -1)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.mu.Lock()
	r.running[e.RunID] = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, e.RunID)
		r.mu.Unlock()
	}()
	stopRenew := r.renew(runCtx, lease, cancel, log)
	defer stopRenew()

	done := r.execute(runCtx, ctx, lease, log)
	if done {
		_ = r.store.Ack(context.WithoutCancel(ctx), e.ID)
	}
}

// renew keeps the lease alive and turns a cancel request or a lost lease into the run's cancellation.
func (r *Runtime) renew(ctx context.Context, l store.Lease, cancel context.CancelCauseFunc, log *slog.Logger) func() {
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(r.opts.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cancelled, err := r.store.RenewLease(ctx, l, r.opts.LeaseTTL)
			switch {
			case errors.Is(err, store.ErrLeaseLost):
				log.Warn("lost the run's lease; another replica owns it now")
				cancel(errLeaseLost)
				return
			case err != nil:
				log.Warn("renewing the run's lease failed", "err", err)
			case cancelled:
				cancel(errCancelled)
			}
		}
	}()
	return func() { close(stop) }
}

// execute runs the workflow and records how it ended. It returns whether the queue entry is done
// (false when this replica is shutting down and leaves the run to another one).
func (r *Runtime) execute(ctx, parent context.Context, l store.Lease, log *slog.Logger) bool {
	bg := context.WithoutCancel(ctx)
	run, err := r.store.GetRun(ctx, l.SessionID, l.RunID)
	if err != nil {
		log.Warn("loading the run failed", "err", err)
		return errors.Is(err, store.ErrNotFound)
	}
	h := &host{store: r.store, lease: l, sessionID: l.SessionID, runID: l.RunID}
	if run.Cancel {
		r.finish(bg, h, log, store.RunCancelled, "", statusEvent(l, "Run cancelled."))
		return true
	}
	var st *workflow.State
	if len(run.Checkpoint) > 0 {
		st = &workflow.State{}
		if err := json.Unmarshal(run.Checkpoint, st); err != nil {
			log.Error("the run's checkpoint is unreadable", "err", err)
			r.finish(bg, h, log, store.RunFailed, "unreadable checkpoint", errorEvent(l, "The run's saved state is unreadable; it cannot continue."))
			return true
		}
		if run.Attempts > 1 && st.WaitingCall == "" {
			_ = h.Emit(ctx, statusEvent(l, fmt.Sprintf("Run resumed from its last checkpoint (attempt %d).", run.Attempts)), nil)
		}
	} else {
		st = workflow.NewState(registry.LeadName, r.withHistory(ctx, run))
		ev := runEvent(l, "started")
		if err := h.Emit(ctx, ev, nil); err != nil {
			return r.failed(bg, h, log, err, ctx)
		}
		if r.opts.ProviderNotice != "" {
			_ = h.Emit(ctx, statusEvent(l, r.opts.ProviderNotice), nil)
		}
	}
	if st.WaitingCall != "" && run.Answer != "" {
		st.Answer = run.Answer
	}
	res, err := r.engine.Execute(ctx, h, workflow.Run{SessionID: l.SessionID, OwnerID: run.OwnerID, RunID: l.RunID}, st)
	h.flush(bg)
	r.reportUsage(bg, h, run.OwnerID, st.UsageEstimated)
	if err != nil {
		return r.failed(bg, h, log, err, ctx)
	}
	switch res.Outcome {
	case workflow.Waiting:
		ev := statusEvent(l, "Waiting for your answer.")
		ev.Data = map[string]any{"status": store.RunWaiting, "question": res.Reason}
		if _, err := r.store.FinishRunAsking(bg, h.lease, store.RunWaiting, "", res.Reason, &ev, nil); err != nil {
			log.Warn("recording the run's wait failed", "err", err)
		}
	case workflow.Stopped:
		ev := statusEvent(l, "Run stopped: "+res.Reason+".")
		ev.Data = map[string]any{"status": store.RunStopped, "reason": res.Reason}
		r.finish(bg, h, log, store.RunStopped, res.Reason, ev)
	default:
		ev := runEvent(l, store.RunCompleted)
		r.finish(bg, h, log, store.RunCompleted, "", ev)
	}
	return true
}

// failed classifies how a run's execution broke off.
func (r *Runtime) failed(bg context.Context, h *host, log *slog.Logger, err error, ctx context.Context) bool {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errCancelled):
		ev := statusEvent(h.lease, "Run cancelled.")
		ev.Data = map[string]any{"status": store.RunCancelled}
		r.finish(bg, h, log, store.RunCancelled, "", ev)
		return true
	case errors.Is(cause, errLeaseLost), errors.Is(err, store.ErrLeaseLost):
		return false // another replica owns the run; its entry is its business
	case errors.Is(err, store.ErrNotFound):
		return true // the session was deleted under the run
	case ctx.Err() != nil:
		// This replica is shutting down: give the run up so another replica resumes it at once.
		_ = r.store.ReleaseLease(bg, h.lease)
		log.Info("run handed back for another replica", "cause", cause)
		return false
	}
	log.Warn("run failed", "err", err)
	msg := "The run failed: " + err.Error()
	if !errors.Is(err, workflow.ErrProvider) {
		msg = "The run failed because of an internal error."
	}
	r.finish(bg, h, log, store.RunFailed, err.Error(), errorEvent(h.lease, msg))
	return true
}

func (r *Runtime) finish(ctx context.Context, h *host, log *slog.Logger, status, errText string, ev events.Event) {
	if ev.Data == nil {
		ev.Data = map[string]any{"status": status}
	}
	if _, err := r.store.FinishRun(ctx, h.lease, status, errText, &ev, nil); err != nil {
		log.Warn("recording the run's end failed", "status", status, "err", err)
		return
	}
	log.Info("run finished", "status", status)
	runsFinished.Add(ctx, 1, metric.WithAttributes(attribute.String("status", status)))
}

// withHistory gives the lead the session's earlier conversation along with the new request, so a
// follow-up ("now make it blue") makes sense.
func (r *Runtime) withHistory(ctx context.Context, run store.Run) string {
	const keep, maxLen = 20, 600
	msgs, err := r.store.Messages(ctx, run.SessionID)
	if err != nil {
		return run.Prompt
	}
	var earlier []events.Message
	for _, m := range msgs {
		if m.ID == run.MessageID {
			break
		}
		earlier = append(earlier, m)
	}
	if len(earlier) == 0 {
		return run.Prompt
	}
	if len(earlier) > keep {
		earlier = earlier[len(earlier)-keep:]
	}
	var b strings.Builder
	b.WriteString("Conversation so far in this session:\n")
	for _, m := range earlier {
		who := m.Sender
		if m.Agent != "" {
			who = m.Agent
		}
		text := m.Content
		if len(text) > maxLen {
			text = text[:maxLen] + "…"
		}
		fmt.Fprintf(&b, "[%s] %s\n", who, text)
	}
	b.WriteString("\nNew request from the user:\n")
	b.WriteString(run.Prompt)
	return b.String()
}

// reportUsage says what the run and the session have cost so far. estimated marks counts that are
// not all the provider's own (a broken stream's, or the scripted provider's, which has no tokens).
func (r *Runtime) reportUsage(ctx context.Context, h *host, owner string, estimated bool) {
	run, err := r.store.GetRun(ctx, h.sessionID, h.runID)
	if err != nil {
		return
	}
	sess, err := r.store.GetSession(ctx, owner, h.sessionID)
	if err != nil {
		return
	}
	text := fmt.Sprintf("Run usage: %d input + %d output tokens, $%.4f (session: $%.4f).", run.InputTokens, run.OutputTokens, run.CostUSD, sess.CostUSD)
	if run.CacheReadTokens > 0 || run.CacheWriteTokens > 0 {
		text = fmt.Sprintf("Run usage: %d input tokens (%d read from the prompt cache, %d written to it) + %d output tokens, $%.4f (session: $%.4f).",
			run.InputTokens, run.CacheReadTokens, run.CacheWriteTokens, run.OutputTokens, run.CostUSD, sess.CostUSD)
	}
	if estimated {
		text += " Token counts are partly estimated."
	}
	usage := func(in, out, cacheRead, cacheWrite int64, cost float64) map[string]any {
		return map[string]any{"input_tokens": float64(in), "output_tokens": float64(out), "cost_usd": cost,
			"cache_read_tokens": float64(cacheRead), "cache_write_tokens": float64(cacheWrite)}
	}
	ev := events.Event{Type: events.TypeUsage, Sender: events.SenderStatus, SessionID: h.sessionID, Timestamp: time.Now().UTC(), RunID: h.runID,
		Content: text,
		Data: map[string]any{
			"run":       usage(run.InputTokens, run.OutputTokens, run.CacheReadTokens, run.CacheWriteTokens, run.CostUSD),
			"session":   usage(sess.InputTokens, sess.OutputTokens, sess.CacheReadTokens, sess.CacheWriteTokens, sess.CostUSD),
			"estimated": estimated,
		}}
	_ = h.Emit(ctx, ev, nil)
}

func runEvent(l store.Lease, status string) events.Event {
	return events.Event{Type: events.TypeRun, Sender: events.SenderStatus, Content: status, SessionID: l.SessionID,
		Timestamp: time.Now().UTC(), RunID: l.RunID, Data: map[string]any{"status": status}}
}

func statusEvent(l store.Lease, text string) events.Event {
	return events.Event{Type: events.TypeStatus, Sender: events.SenderStatus, Content: text, SessionID: l.SessionID,
		Timestamp: time.Now().UTC(), RunID: l.RunID}
}

func errorEvent(l store.Lease, text string) events.Event {
	return events.Event{Type: events.TypeError, Sender: events.SenderStatus, Content: text, SessionID: l.SessionID,
		Timestamp: time.Now().UTC(), RunID: l.RunID, Data: map[string]any{"status": store.RunFailed}}
}
