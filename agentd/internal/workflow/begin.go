package workflow

import (
	"context"
	"fmt"
	"strings"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
)

// Briefer describes the project — its files, running processes and previews, documents, plan and how
// the last run went — to the lead at a run's start and to each member it delegates to.
type Briefer interface {
	Brief(ctx context.Context, in BriefInput) string
}

// BriefInput is what the workflow knows for a brief; the Briefer adds the workspace.
type BriefInput struct {
	SessionID    string
	OwnerID      string
	Original     string
	Request      string
	Plan         []Task
	PlanFinished bool
	Last         LastRun
}

// LastRun is how the session's previous run ended, as the next one is told.
type LastRun struct {
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Summary is what the lead last told the user.
	Summary string `json:"summary,omitempty"`
}

func (e *Engine) brief(ctx context.Context, run Run, st *State) string {
	if e.Briefer == nil {
		return ""
	}
	return e.Briefer.Brief(ctx, BriefInput{SessionID: run.SessionID, OwnerID: run.OwnerID, Original: st.Original,
		Request: st.Request, Plan: st.Plan, PlanFinished: st.PlanFinished, Last: st.Last})
}

// Start is what a run starts from.
type Start struct {
	// Request is the user's message that started the run; Original the first of the session.
	Request  string
	Original string
	// History is the session's conversation before it, as the lead is told it ("" for the first).
	History string
	// Previous is the state the session's previous run left, nil for the first run; Last says how
	// that run ended.
	Previous *State
	Last     LastRun
	// Resume continues Previous where it stopped (it hit a limit, failed or was cancelled) with
	// fresh limits; otherwise the run starts a new lead conversation and keeps the rest (plan,
	// members' conversations).
	Resume bool
	// Unread are messages the user posted to the previous run that its lead never read.
	Unread []string
	// Records are the previous run's tool records, for the calls it left without a result.
	Records map[string]ToolRecord
	// Drop lists stored conversations the run deletes (a previous run's, not carried over).
	Drop []string
}

// Begin builds the state a run starts from.
func (e *Engine) Begin(ctx context.Context, run Run, s Start) *State {
	if s.Resume && s.Previous != nil {
		return e.resume(ctx, run, s)
	}
	st := &State{Convs: map[string]*Conv{}, NextFrameID: 1, Last: s.Last, Original: firstNonEmpty(s.Original, s.Request), Request: s.Request,
		Drop: s.Drop}
	if p := s.Previous; p != nil {
		st.Plan, st.PlanFinished = p.Plan, p.PlanFinished
		for k, c := range p.Convs {
			if c.Agent == registry.LeadName {
				// The lead starts each run afresh from the history and the brief; its old
				// conversation is not needed any more.
				st.Drop = append(st.Drop, c.Key)
				continue
			}
			st.Convs[k] = c
		}
	}
	key := registry.LeadName + "@" + run.RunID
	st.Convs[key] = &Conv{Key: key, Agent: registry.LeadName}
	st.Frames = []Frame{{ID: 0, Agent: registry.LeadName, Conv: key}}
	var b strings.Builder
	if s.History != "" {
		b.WriteString(s.History)
		b.WriteString("\n\n")
	}
	if brief := e.brief(ctx, run, st); brief != "" {
		b.WriteString(brief)
		b.WriteString("\n\n")
	}
	if b.Len() > 0 {
		b.WriteString("New request from the user:\n")
	}
	b.WriteString(s.Request)
	st.add(&st.Frames[0], llm.Message{Role: llm.RoleUser, Content: b.String(), Pinned: true})
	return st
}

// resume continues the previous run's state: the same conversations and stack, fresh limits, and the
// user's new message (with what the lead never read of the previous run) for the lead's next turn.
func (e *Engine) resume(ctx context.Context, run Run, s Start) *State {
	st := s.Previous
	st.Steps, st.LeadSteps, st.ToolCalls, st.Tokens = 0, 0, 0, 0
	st.Unpriced, st.UsageEstimated = nil, false
	st.WaitingCall, st.Answer, st.Inbox = "", "", 0
	st.Last, st.Request = s.Last, s.Request
	st.Original = firstNonEmpty(st.Original, s.Original, s.Request)
	for i := range st.Frames {
		f := &st.Frames[i]
		f.Steps, f.Invalid, f.Recent, f.Nudged, f.Asked, f.Urged = 0, 0, nil, "", false, false
		e.settle(st, f, s.Records)
		if j := taskIndex(st.Plan, f.Task); j >= 0 && st.Plan[j].Status == TaskBlocked {
			st.Plan[j].Status = TaskInProgress
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The previous run %s", s.Last.Status)
	if s.Last.Reason != "" {
		fmt.Fprintf(&b, " (%s)", s.Last.Reason)
	}
	b.WriteString("; this run continues it with fresh limits.")
	for _, m := range s.Unread {
		b.WriteString("\n\nThe user wrote while that run was active:\n")
		b.WriteString(m)
	}
	b.WriteString("\n\nThe user now writes:\n")
	b.WriteString(s.Request)
	if brief := e.brief(ctx, run, st); brief != "" {
		b.WriteString("\n\n")
		b.WriteString(brief)
	}
	st.Pending = append(st.Pending, b.String())
	// A member at work when the run stopped resumes its task; it hears the user's words too, in case
	// they change what it should do (the lead reads them at its next turn).
	if top := st.top(); len(st.Frames) > 1 {
		if _, pending := st.pendingCall(top); !pending {
			st.add(top, llm.Message{Role: llm.RoleUser, Pinned: true, Content: fmt.Sprintf(
				"The run you were working in %s and has been resumed. The user wrote to the team:\n%s\n\nIf this changes your task, wrap up and report to Mike; otherwise carry on where you left off.",
				s.Last.Status, s.Request)})
		}
	}
	return st
}

// settle answers the calls of the frame's last model turn that the previous run left without a
// result, from that run's tool records: a finished call's recorded result, an interruption for a
// side-effecting call that started. Calls with no record run when the frame resumes.
func (e *Engine) settle(st *State, f *Frame, recs map[string]ToolRecord) {
	for {
		call, ok := st.pendingCall(f)
		if !ok {
			return
		}
		rec, found := recs[fmt.Sprintf("f%d:%s", f.ID, call.ID)]
		switch {
		case found && rec.Done:
			st.observe(f, call, rec.Output, rec.IsError)
		case found:
			st.observe(f, call, interrupted, true)
		default:
			return
		}
	}
}

// Conclude records how the run ended in its plan: tasks a completed run left open are skipped, and
// tasks a stopped, failed or cancelled run was working on are blocked until a new message resumes
// it. Each change is a task event; the state is checkpointed. status is the run's final status
// ("completed", "stopped", "failed", "cancelled").
func (e *Engine) Conclude(ctx context.Context, h Host, run Run, st *State, status, reason string) error {
	changed := false
	for i := range st.Plan {
		t := &st.Plan[i]
		switch {
		case status == "completed" && t.Open():
			t.Status, t.Note = TaskSkipped, appendNote(t.Note, "left open when the run completed")
		case status != "completed" && t.Status == TaskInProgress:
			why := "the run " + status
			if reason != "" {
				why += ": " + reason
			}
			t.Status, t.Note = TaskBlocked, appendNote(t.Note, why+"; a new message resumes it")
		default:
			continue
		}
		changed = true
		if err := e.emitTask(ctx, h, run, registry.LeadName, "", *t); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	return h.Checkpoint(ctx, st, Usage{})
}

func appendNote(note, add string) string {
	if note == "" {
		return add
	}
	return note + " — " + add
}

// PlanOf reads the plan from a checkpoint's head.
func PlanOf(head []byte) (plan []Task, finished bool, err error) {
	st, err := ReadHead(head)
	if err != nil {
		return nil, false, err
	}
	return st.Plan, st.PlanFinished, nil
}
