package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
)

var errUnreadable = errors.New("runtime: unreadable checkpoint")

// state is what the run executes from: its own checkpoint when it ran before (a takeover, an
// answered question), else a state begun from the session's previous run — continued as it stood
// when that run stopped, failed or was cancelled, or else carrying its plan and the members'
// conversations into a new lead conversation.
func (r *run) state(ctx context.Context) (*workflow.State, error) {
	rec := r.record
	if len(rec.Checkpoint) > 0 {
		st, err := r.load(ctx, rec.Checkpoint)
		if err != nil {
			return nil, err
		}
		if rec.Attempts > 1 && st.WaitingCall == "" {
			_ = r.Emit(ctx, r.scope.Status("", fmt.Sprintf("Run resumed from its last checkpoint (attempt %d).", rec.Attempts), nil))
		}
		return st, nil
	}
	if err := r.Emit(ctx, r.runEvent("started")); err != nil {
		return nil, err
	}
	if r.rt.opts.ProviderNotice != "" {
		_ = r.Emit(ctx, r.scope.Status("", r.rt.opts.ProviderNotice, nil))
	}
	start := workflow.Start{Request: rec.Prompt}
	msgs, err := r.store.Messages(ctx, r.lease.SessionID)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.GetSender() == events.SenderUser {
			start.Original = m.GetContent()
			break
		}
	}
	prev, prevState, err := r.previous(ctx)
	if err != nil {
		return nil, err
	}
	if prevState != nil {
		start.Previous = prevState
		start.Last = workflow.LastRun{Status: prev.Status, Reason: prev.Error, Summary: prevState.Summary}
		switch {
		case prev.ID != rec.PrevRun:
		case prev.Status == store.RunFailed && prev.ResumedFrom != "":
			// It failed again after being resumed: resuming once more would most likely fail the
			// same way (a conversation the provider rejects). Start afresh from the history and
			// the brief, without the conversations that may be at fault.
			start.Previous = &workflow.State{Plan: prevState.Plan, PlanFinished: prevState.PlanFinished, Summary: prevState.Summary}
			start.Drop = prevState.ConvKeys()
		case prev.Status == store.RunStopped, prev.Status == store.RunFailed, prev.Status == store.RunCancelled:
			start.Resume = true
		}
	}
	if start.Resume {
		if start.Unread, err = r.store.Inbox(ctx, r.lease.SessionID, prev.ID, prevState.Inbox); err != nil {
			return nil, err
		}
		recs, err := r.store.ToolRecords(ctx, r.lease.SessionID, prev.ID)
		if err != nil {
			return nil, err
		}
		start.Records = make(map[string]workflow.ToolRecord, len(recs))
		for k, v := range recs {
			start.Records[k] = toolRecord(v)
		}
	} else {
		start.History = transcript(msgs, rec.MessageID, r.rt.opts.HistoryTokens)
	}
	st := r.rt.engine.Begin(ctx, r.wrun(), start)
	if start.Resume {
		text := fmt.Sprintf("Continuing the run that %s, with fresh limits.", prev.Status)
		if err := r.Emit(ctx, r.scope.Status("", text, map[string]any{"resumed_from": prev.ID})); err != nil {
			return nil, err
		}
		if err := r.store.SetResumedFrom(ctx, r.lease, prev.ID); err != nil {
			return nil, err
		}
	}
	// The first checkpoint makes the run's start durable: a takeover resumes this state rather than
	// beginning again, and the next run finds its conversations.
	if err := r.Checkpoint(ctx, st, workflow.Usage{}); err != nil {
		return nil, err
	}
	return st, nil
}

// previous returns the session's latest earlier run that left a checkpoint, with its state loaded,
// or nils. Runs that never executed (cancelled while queued) are passed over.
func (r *run) previous(ctx context.Context) (store.Run, *workflow.State, error) {
	id := r.record.PrevRun
	for hops := 0; id != "" && hops < 8; hops++ {
		prev, err := r.store.GetRun(ctx, r.lease.SessionID, id)
		if errors.Is(err, store.ErrNotFound) {
			return store.Run{}, nil, nil
		}
		if err != nil {
			return store.Run{}, nil, err
		}
		if len(prev.Checkpoint) == 0 {
			id = prev.PrevRun
			continue
		}
		st, err := r.load(ctx, prev.Checkpoint)
		if err != nil {
			// A previous run's state that cannot be read is not this run's failure: start afresh.
			r.log.Warn("the previous run's checkpoint is unreadable; starting without it", "prev_run", prev.ID, "err", err)
			return store.Run{}, nil, nil
		}
		return prev, st, nil
	}
	return store.Run{}, nil, nil
}

// load reads a checkpoint: its head, then its conversations' stored messages.
func (r *run) load(ctx context.Context, head []byte) (*workflow.State, error) {
	st, err := workflow.ReadHead(head)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	ranges := make([]store.ConvRange, 0, len(st.Convs))
	for _, c := range st.Convs {
		ranges = append(ranges, store.ConvRange{Key: c.Key, From: c.Base, Count: c.Saved})
	}
	raw, err := r.store.Conversations(ctx, r.lease.SessionID, ranges)
	if err != nil {
		return nil, err
	}
	if err := st.Load(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	return st, nil
}
