package workflow

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
)

// control handles the tools that steer the workflow: the plan, delegation and reports, and talking
// to the user.
func (e *Engine) control(ctx context.Context, h Host, run Run, st *State, call llm.ToolCall, lim Limits) (Result, bool, error) {
	f := st.top()
	spec, _ := tools.Lookup(call.Name)
	isLead := f.Agent == registry.LeadName
	switch call.Name {
	case tools.PlanAppend:
		var a struct {
			Tasks []Task `json:"tasks"`
		}
		_ = spec.Parse(call.Arguments, &a)
		if why := e.checkNewTasks(st, a.Tasks); why != "" {
			st.observe(f, call, "error: "+why+"; no task was added", true)
			return Result{}, false, nil
		}
		for _, t := range a.Tasks {
			if t.ID == "" {
				t.ID = e.nextTaskID(st)
			}
			t.Assignee = strings.ToLower(t.Assignee)
			t.Status = TaskTodo
			st.Plan = append(st.Plan, t)
		}
		st.PlanFinished = false
		if err := e.emitPlan(ctx, h, run, st, "plan updated"); err != nil {
			return Result{}, false, err
		}
		return e.observeOnce(ctx, h, run, st, f, call, "plan now:\n"+planText(st.Plan), "", false, lim)
	case tools.PlanUpdate:
		var a struct {
			TaskID string `json:"task_id"`
			Status string `json:"status"`
			Note   string `json:"note"`
		}
		_ = spec.Parse(call.Arguments, &a)
		i := taskIndex(st.Plan, a.TaskID)
		if i < 0 {
			st.observe(f, call, fmt.Sprintf("error: no task %q (tasks: %s)", a.TaskID, taskIDs(st.Plan)), true)
			return Result{}, false, nil
		}
		if a.Status == TaskInProgress {
			if blockers := unmetDeps(st.Plan, st.Plan[i]); len(blockers) > 0 {
				st.observe(f, call, fmt.Sprintf("error: task %s depends on %s, not done yet; finish those first", a.TaskID, strings.Join(blockers, ", ")), true)
				return Result{}, false, nil
			}
		}
		if a.Status != "" {
			st.Plan[i].Status = a.Status
		}
		if a.Note != "" {
			st.Plan[i].Note = a.Note
		}
		if err := e.emitTask(ctx, h, run, f.Agent, call.Name, st.Plan[i]); err != nil {
			return Result{}, false, err
		}
		return e.observeOnce(ctx, h, run, st, f, call, fmt.Sprintf("task %s is %s", a.TaskID, st.Plan[i].Status), "", false, lim)
	case tools.PlanFinish:
		st.PlanFinished = true
		if err := e.emitPlan(ctx, h, run, st, "plan finished"); err != nil {
			return Result{}, false, err
		}
		return e.observeOnce(ctx, h, run, st, f, call, "plan finished", "", false, lim)
	case tools.SendMessage:
		var a struct{ To, Content string }
		_ = spec.Parse(call.Arguments, &a)
		to := strings.ToLower(strings.TrimSpace(a.To))
		if !isLead {
			if to != registry.LeadName {
				st.observe(f, call, "error: members report to "+registry.LeadName+" only", true)
				return Result{}, false, nil
			}
			st.observe(f, call, "delivered", false)
			e.pop(st, a.Content)
			return Result{}, false, nil
		}
		return e.delegate(ctx, h, run, st, call, to, a.Content)
	case tools.ReplyToHuman:
		var a struct{ Content string }
		_ = spec.Parse(call.Arguments, &a)
		st.observe(f, call, "delivered to the user", false)
		if isLead {
			st.Replied, st.Summary = true, a.Content
		}
		return Result{}, false, h.Emit(ctx, run.scope().Said(f.Agent, a.Content))
	case tools.AskHuman:
		var a struct{ Question string }
		_ = spec.Parse(call.Arguments, &a)
		key := fmt.Sprintf("f%d:%s", f.ID, call.ID)
		if st.WaitingCall == key && st.Answer != "" {
			st.observe(f, call, "the user answered: "+st.Answer, false)
			st.WaitingCall, st.Answer = "", ""
			return Result{}, false, nil
		}
		st.WaitingCall = key
		st.Replied = true
		ev := run.scope().Said(f.Agent, a.Question)
		ev.Data = events.Data(map[string]any{"question": true, "call_id": call.ID})
		if err := h.Emit(ctx, ev); err != nil {
			return Result{}, false, err
		}
		return Result{Outcome: Waiting, Reason: a.Question}, true, nil
	case tools.End:
		var a struct{ Summary string }
		_ = spec.Parse(call.Arguments, &a)
		if !isLead {
			st.observe(f, call, "ended", false)
			e.pop(st, a.Summary)
			return Result{}, false, nil
		}
		return e.end(ctx, h, run, st, call, a.Summary)
	}
	st.observe(f, call, "error: unhandled tool "+call.Name, true)
	return Result{}, false, nil
}

// end is the lead's end call. A run never ends silently: a summary the user has not seen becomes
// the lead's message; without a summary or an earlier reply the lead is asked (once) to reply
// first. A message the user posted meanwhile keeps the run going.
func (e *Engine) end(ctx context.Context, h Host, run Run, st *State, call llm.ToolCall, summary string) (Result, bool, error) {
	f := st.top()
	unread, err := h.Inbox(ctx, st.Inbox)
	if err != nil {
		return Result{}, false, err
	}
	if len(unread) > 0 {
		st.observe(f, call, "not ended: the user sent a new message meanwhile (next); handle it first", true)
		return Result{}, false, nil
	}
	summary = strings.TrimSpace(summary)
	if !st.Replied {
		switch {
		case summary != "":
			if err := h.Emit(ctx, run.scope().Said(f.Agent, summary)); err != nil {
				return Result{}, false, err
			}
			st.Replied, st.Summary = true, summary
		case !f.Urged:
			f.Urged = true
			st.observe(f, call, "not ended: the user has had no answer from you in this run. Tell them what was done (reply_to_human), then call end.", true)
			return Result{}, false, nil
		}
	}
	st.observe(f, call, "ended", false)
	return Result{Outcome: Completed, Reason: summary}, true, nil
}

// delegate gives a member a task: the lead's send_message. The member resumes its conversation of
// the session (its earlier tasks and what it did for them) with the task and a fresh project brief.
func (e *Engine) delegate(ctx context.Context, h Host, run Run, st *State, call llm.ToolCall, to, content string) (Result, bool, error) {
	f := st.top()
	if _, ok := e.Registry.Get(to); !ok || to == registry.LeadName {
		st.observe(f, call, fmt.Sprintf("error: %q is not a team member (members: %s)", to, strings.Join(e.Registry.Members(), ", ")), true)
		return Result{}, false, nil
	}
	// The member works on its first open task whose dependencies are done; when every open task it
	// has waits on another, the delegation is refused: a dependent task never starts early.
	task := -1
	var blocked []string
	for i, t := range st.Plan {
		if t.Assignee != to || (t.Status != TaskTodo && t.Status != TaskBlocked) {
			continue
		}
		if deps := unmetDeps(st.Plan, t); len(deps) > 0 {
			blocked = append(blocked, fmt.Sprintf("%s waits on %s", t.ID, strings.Join(deps, ", ")))
			continue
		}
		task = i
		break
	}
	if task < 0 && len(blocked) > 0 {
		st.observe(f, call, fmt.Sprintf("error: not delegated. %s's open tasks depend on unfinished tasks (%s); get those done (and marked done with plan_update) first.",
			events.Display(to), strings.Join(blocked, "; ")), true)
		return Result{}, false, nil
	}
	frame := Frame{ID: st.NextFrameID, Agent: to, Conv: to, ParentCall: call.ID}
	st.NextFrameID++
	if task >= 0 {
		st.Plan[task].Status = TaskInProgress
		frame.Task = st.Plan[task].ID
		if err := e.emitTask(ctx, h, run, f.Agent, call.Name, st.Plan[task]); err != nil {
			return Result{}, false, err
		}
	}
	c := st.Convs[to]
	if c == nil {
		c = &Conv{Key: to, Agent: to}
		st.Convs[to] = c
	}
	var b strings.Builder
	if len(c.Messages) > 0 {
		b.WriteString("New task from Mike. Your earlier work in this session is above: build on it, do not start over.\n\n")
	} else {
		b.WriteString("Task from Mike:\n\n")
	}
	b.WriteString(content)
	if frame.Task != "" {
		fmt.Fprintf(&b, "\n\n(Plan task %s: %s)", frame.Task, st.Plan[task].Title)
	}
	if brief := e.brief(ctx, run, st); brief != "" {
		b.WriteString("\n\n")
		b.WriteString(brief)
	}
	st.Frames = append(st.Frames, frame)
	st.add(&st.Frames[len(st.Frames)-1], llm.Message{Role: llm.RoleUser, Content: b.String(), Pinned: true})
	ev := run.scope().Status(f.Agent, fmt.Sprintf("%s → %s: %s", events.Display(f.Agent), events.Display(to), content), map[string]any{"to": events.Display(to)})
	ev.Tool = &call.Name
	return Result{}, false, h.Emit(ctx, ev)
}

// checkNewTasks says what is wrong with tasks to append, or "".
func (e *Engine) checkNewTasks(st *State, tasks []Task) string {
	ids := map[string]bool{}
	for _, t := range st.Plan {
		ids[t.ID] = true
	}
	for _, t := range tasks {
		if t.ID != "" {
			if ids[t.ID] {
				return fmt.Sprintf("task id %q is taken (the plan has %s); use plan_update to change a task, or a new id", t.ID, taskIDs(st.Plan))
			}
			ids[t.ID] = true
		}
		if _, ok := e.Registry.Get(t.Assignee); !ok {
			return fmt.Sprintf("task %q: %q is not on the team (%s, %s)", t.Title, t.Assignee, registry.LeadName, strings.Join(e.Registry.Members(), ", "))
		}
	}
	for _, t := range tasks {
		for _, d := range t.DependsOn {
			if !ids[d] {
				return fmt.Sprintf("task %q depends on %q, which is not in the plan", t.Title, d)
			}
		}
	}
	return ""
}

func (e *Engine) nextTaskID(st *State) string {
	for n := len(st.Plan) + 1; ; n++ {
		id := fmt.Sprintf("t%d", n)
		if taskIndex(st.Plan, id) < 0 {
			return id
		}
	}
}

func taskIndex(plan []Task, id string) int {
	return slices.IndexFunc(plan, func(t Task) bool { return t.ID == id })
}

func taskIDs(plan []Task) string {
	if len(plan) == 0 {
		return "no tasks"
	}
	ids := make([]string, len(plan))
	for i, t := range plan {
		ids[i] = t.ID
	}
	return strings.Join(ids, ", ")
}

// unmetDeps lists the tasks t depends on that are not done.
func unmetDeps(plan []Task, t Task) []string {
	var out []string
	for _, d := range t.DependsOn {
		if i := taskIndex(plan, d); i >= 0 && plan[i].Status != TaskDone {
			out = append(out, fmt.Sprintf("%s (%s)", d, plan[i].Status))
		}
	}
	return out
}

// planText renders the plan for a model: one task per line with its state.
func planText(plan []Task) string {
	if len(plan) == 0 {
		return "(no tasks)"
	}
	var b strings.Builder
	for _, t := range plan {
		fmt.Fprintf(&b, "- %s [%s] %s — %s", t.ID, t.Status, t.Title, events.Display(t.Assignee))
		if len(t.DependsOn) > 0 {
			fmt.Fprintf(&b, " (after %s)", strings.Join(t.DependsOn, ", "))
		}
		if t.Note != "" {
			fmt.Fprintf(&b, ": %s", t.Note)
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (e *Engine) emitPlan(ctx context.Context, h Host, run Run, st *State, content string) error {
	tasks := make([]any, 0, len(st.Plan))
	for _, t := range st.Plan {
		tasks = append(tasks, taskMap(t))
	}
	return h.Emit(ctx, run.scope().Tool(events.TypePlan, registry.LeadName, "", content, map[string]any{"tasks": tasks, "finished": st.PlanFinished}))
}

func (e *Engine) emitTask(ctx context.Context, h Host, run Run, agent, tool string, t Task) error {
	return h.Emit(ctx, run.scope().Tool(events.TypeTask, agent, tool, t.Title+": "+t.Status, map[string]any{"task": taskMap(t)}))
}

func taskMap(t Task) map[string]any {
	deps := t.DependsOn
	if deps == nil {
		deps = []string{}
	}
	return map[string]any{"id": t.ID, "title": t.Title, "assignee": t.Assignee, "status": t.Status, "note": t.Note, "depends_on": deps}
}
