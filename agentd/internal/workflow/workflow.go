package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
)

// Outcomes of a run's execution.
type Outcome int

// Outcomes.
const (
	Completed Outcome = iota // the lead ended the run
	Waiting                  // ask_human: the run waits for the user's answer; Result.Reason is the question
	Stopped                  // a bound or repetition stopped the run; Result.Reason says which
)

// Result is how Execute ended.
type Result struct {
	Outcome Outcome
	Reason  string
}

// Host is what the workflow needs from the run's executor: fenced writes to the session's log and
// the run's records. Every method fails with store.ErrLeaseLost once another replica owns the run.
type Host interface {
	Emit(ctx context.Context, ev events.Event, msg *events.Message) error
	// Token streams a piece of a message being generated (buffered, best effort).
	Token(ctx context.Context, messageID, agent, text string)
	// ToolCallDelta streams a piece of a tool call's arguments as the model writes them (buffered,
	// best effort); the final tool_call event with the same message id replaces the pieces.
	ToolCallDelta(ctx context.Context, messageID, agent, tool, args string)
	Checkpoint(ctx context.Context, st *State, u store.Usage) error
	BeginTool(ctx context.Context, key, tool string) (bool, store.ToolRecord, error)
	EndTool(ctx context.Context, key string, rec store.ToolRecord) error
}

// SandboxTools executes the sandbox tools.
type SandboxTools interface {
	Execute(ctx context.Context, c tools.Call) (tools.Result, error)
}

// Limits bound one run.
type Limits struct {
	MaxSteps     int
	MaxToolCalls int
	MaxTokens    int64
	// Repetition is how many identical consecutive tool calls of one agent stop the run.
	Repetition int
	// MaxInvalid is how many consecutive unusable outputs end an agent's step.
	MaxInvalid int
}

// Engine executes runs.
type Engine struct {
	Registry *registry.Registry
	Provider llm.Provider
	Tools    SandboxTools
	Limits   Limits
	// Pricing prices each model's usage.
	Pricing llm.Pricing
	Model   string
	// MaxOutputTokens bounds one model call's answer; 0 leaves it to each model's default cap.
	MaxOutputTokens int
	// Retry repeats model turns that failed for a passing reason (overload, rate limit, a broken
	// stream), each retry shown to the user.
	Retry llm.RetryPolicy
	// MaxContinuations bounds how often a text answer cut by the output limit is continued.
	MaxContinuations int
}

// Run identifies the run being executed.
type Run struct {
	SessionID string
	OwnerID   string
	RunID     string
}

// ErrProvider wraps a model failure; the run fails with a visible error event. A conversation that
// outgrew the model's context window also matches llm.ErrContextLength.
var ErrProvider = errors.New("model provider failed")

func (e *Engine) limitsFor() Limits {
	l := e.Limits
	if lead, ok := e.Registry.Get(registry.LeadName); ok {
		if lead.Limits.MaxSteps > 0 {
			l.MaxSteps = lead.Limits.MaxSteps
		}
		if lead.Limits.MaxToolCalls > 0 {
			l.MaxToolCalls = lead.Limits.MaxToolCalls
		}
		if lead.Limits.MaxTokens > 0 {
			l.MaxTokens = lead.Limits.MaxTokens
		}
	}
	return l
}

// Execute advances the run from st until it completes, waits for the user, or is stopped.
func (e *Engine) Execute(ctx context.Context, h Host, run Run, st *State) (Result, error) {
	lim := e.limitsFor()
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if len(st.Frames) == 0 {
			return Result{Outcome: Completed}, nil
		}
		top := &st.Frames[len(st.Frames)-1]
		if call, ok := top.pendingCall(); ok {
			res, done, err := e.resolve(ctx, h, run, st, call, lim)
			if err != nil {
				return Result{}, err
			}
			if err := h.Checkpoint(ctx, st, store.Usage{}); err != nil {
				return Result{}, err
			}
			if done {
				return res, nil
			}
			continue
		}
		switch {
		case lim.MaxSteps > 0 && st.Steps >= lim.MaxSteps:
			return Result{Outcome: Stopped, Reason: fmt.Sprintf("the step limit (%d model calls) was reached", lim.MaxSteps)}, nil
		case lim.MaxTokens > 0 && st.Tokens >= lim.MaxTokens:
			return Result{Outcome: Stopped, Reason: fmt.Sprintf("the token limit (%d) was reached", lim.MaxTokens)}, nil
		}
		res, done, err := e.turn(ctx, h, run, st)
		if err != nil {
			return Result{}, err
		}
		if done {
			return res, nil
		}
		if len(st.Frames) == 0 {
			return Result{Outcome: Completed}, nil
		}
	}
}

func senderOf(agent string) string {
	if agent == registry.LeadName {
		return events.SenderMike
	}
	return events.SenderAgent
}

// turn asks the top frame's agent for its next move. done means the run's execution ends with res.
func (e *Engine) turn(ctx context.Context, h Host, run Run, st *State) (res Result, done bool, err error) {
	top := &st.Frames[len(st.Frames)-1]
	agent, ok := e.Registry.Get(top.Agent)
	if !ok {
		return Result{}, false, fmt.Errorf("workflow: agent %q is not in the registry", top.Agent)
	}
	model := agent.Model
	if model == "" {
		model = e.Model
	}
	msgID := uuid.NewString()
	resp, segments, err := e.complete(ctx, h, run, agent, model, msgID, top.Messages)
	usage, accErr := e.account(ctx, h, run, st, agent.Name, firstNonEmpty(model, resp.Model), resp.Usage)
	if err != nil {
		// What the failed attempts consumed is billed all the same, so it is recorded.
		if resp.Usage != (llm.Usage{}) && accErr == nil {
			_ = h.Checkpoint(context.WithoutCancel(ctx), st, usage)
		}
		if ctx.Err() != nil {
			return Result{}, false, ctx.Err()
		}
		return Result{}, false, fmt.Errorf("%w: %w", ErrProvider, err)
	}
	if accErr != nil {
		return Result{}, false, accErr
	}
	st.Steps += segments
	if resp.Stop == llm.StopLength {
		markCut(agent, &resp)
	}
	refused := resp.Stop.Refused()
	if refused {
		// Whatever calls a refused or filtered answer held may be cut; none of them runs.
		resp.ToolCalls = nil
	}
	// Call ids key the idempotency records, so they must be unique within the run: some providers
	// send none, or reuse them across turns.
	seen := map[string]bool{}
	for _, m := range top.Messages {
		for _, c := range m.ToolCalls {
			seen[c.ID] = true
		}
	}
	for i := range resp.ToolCalls {
		if id := resp.ToolCalls[i].ID; id == "" || seen[id] {
			resp.ToolCalls[i].ID = fmt.Sprintf("call_s%d_%d", st.Steps, i)
		}
		seen[resp.ToolCalls[i].ID] = true
		resp.ToolCalls[i].MessageID = callMessageID(msgID, i)
	}
	// The model's refusal stays in its conversation; the user reads it in the status below.
	content := resp.Content
	if refused && strings.TrimSpace(content) == "" {
		content = resp.Refusal
	}
	top.Messages = append(top.Messages, llm.Message{Role: llm.RoleAssistant, Content: content, ToolCalls: resp.ToolCalls})
	if text := strings.TrimSpace(resp.Content); text != "" {
		m := events.Message{ID: msgID, SessionID: run.SessionID, Sender: senderOf(agent.Name), Content: text,
			Timestamp: time.Now().UTC(), Agent: agent.Name, RunID: run.RunID}
		if err := h.Emit(ctx, m.Event(), &m); err != nil {
			return Result{}, false, err
		}
	}
	if len(resp.ToolCalls) == 0 {
		if resp.Stop == llm.StopLength && strings.TrimSpace(resp.Content) != "" {
			// Continued as often as allowed and still cut: the answer stands, incomplete, and says so.
			text := fmt.Sprintf("%s's answer was cut by the output limit; it ends incomplete.", display(agent.Name))
			if segments > 1 {
				text = fmt.Sprintf("%s's answer was still cut by the output limit after %d continuations; it ends incomplete.",
					display(agent.Name), segments-1)
			}
			if err := h.Emit(ctx, statusEvent(run, agent.Name, text, map[string]any{"stop_reason": resp.StopReason}), nil); err != nil {
				return Result{}, false, err
			}
		}
		if reason := unanswered(agent.Name, resp, refused); reason != "" {
			// A refusal, a filtered answer or an answer lost to the output limit never passes for a
			// finished step: the user sees why, and the lead decides what to do about a member's.
			data := map[string]any{"stop_reason": firstNonEmpty(resp.StopReason, string(resp.Stop))}
			if err := h.Emit(ctx, statusEvent(run, agent.Name, reason, data), nil); err != nil {
				return Result{}, false, err
			}
			if len(st.Frames) == 1 {
				if err := h.Checkpoint(ctx, st, usage); err != nil {
					return Result{}, false, err
				}
				return Result{Outcome: Stopped, Reason: strings.TrimSuffix(reason, ".")}, true, nil
			}
			e.pop(st, "failed: "+reason)
		} else {
			// A plain answer ends the agent's step: the lead's is its final word to the user, a
			// member's is its report.
			e.pop(st, resp.Content)
		}
	}
	return Result{}, false, h.Checkpoint(ctx, st, usage)
}

// unanswered says why a turn without tool calls is not a real answer, or "" when it is one.
func unanswered(agent string, resp llm.Response, refused bool) string {
	switch {
	case refused:
		return refusal(agent, resp)
	case resp.Stop == llm.StopLength && strings.TrimSpace(resp.Content) == "":
		return fmt.Sprintf("%s's model used its whole output limit (%d tokens) without answering (reasoning models spend part of it thinking; AGENTD_LLM_MAX_OUTPUT_TOKENS raises it).",
			display(agent), resp.MaxTokens)
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (e *Engine) system(a registry.Agent) string {
	var b strings.Builder
	b.WriteString(a.SystemPrompt)
	if a.Name == registry.LeadName {
		b.WriteString("\nTeam members: ")
		b.WriteString(strings.Join(e.Registry.Members(), ", "))
		b.WriteString(".")
	}
	return b.String()
}

// pop ends the top frame; its report becomes the result of the lead's send_message call.
func (e *Engine) pop(st *State, report string) {
	child := st.Frames[len(st.Frames)-1]
	st.Frames = st.Frames[:len(st.Frames)-1]
	if len(st.Frames) == 0 {
		return
	}
	if strings.TrimSpace(report) == "" {
		report = "(no report)"
	}
	parent := &st.Frames[len(st.Frames)-1]
	parent.Messages = append(parent.Messages, llm.Message{Role: llm.RoleTool, ToolCallID: child.ParentCall,
		ToolName: tools.SendMessage, Content: child.Agent + " reports: " + report})
}

func observe(f *Frame, call llm.ToolCall, out string, isErr bool) {
	f.Messages = append(f.Messages, llm.Message{Role: llm.RoleTool, ToolCallID: call.ID, ToolName: call.Name, Content: out, IsError: isErr})
}

func toolEvent(run Run, typ, agent, tool, content string, data map[string]any) events.Event {
	return events.Event{Type: typ, Sender: senderOf(agent), Agent: agent, Content: content, SessionID: run.SessionID,
		Timestamp: time.Now().UTC(), Tool: tool, Invoker: agent, RunID: run.RunID, Data: data}
}

func (e *Engine) refuse(ctx context.Context, h Host, run Run, st *State, f *Frame, call llm.ToolCall, why string, lim Limits) (Result, bool, error) {
	observe(f, call, "error: "+why, true)
	f.Invalid++
	ev := toolEvent(run, events.TypeError, f.Agent, call.Name, why, map[string]any{"call_id": call.ID})
	if err := h.Emit(ctx, ev, nil); err != nil {
		return Result{}, false, err
	}
	return e.tooManyInvalid(ctx, h, run, st, f, lim)
}

// tooManyInvalid ends the agent's step (the run, for the lead) once its unusable outputs in a row
// reach the limit.
func (e *Engine) tooManyInvalid(ctx context.Context, h Host, run Run, st *State, f *Frame, lim Limits) (Result, bool, error) {
	if lim.MaxInvalid > 0 && f.Invalid >= lim.MaxInvalid {
		reason := fmt.Sprintf("%s produced %d unusable outputs in a row", f.Agent, f.Invalid)
		if len(st.Frames) == 1 {
			return Result{Outcome: Stopped, Reason: reason}, true, nil
		}
		if err := h.Emit(ctx, toolEvent(run, events.TypeStatus, f.Agent, "", reason+"; its step ends", nil), nil); err != nil {
			return Result{}, false, err
		}
		e.pop(st, "failed: "+reason)
	}
	return Result{}, false, nil
}

// callEvent is the final tool_call event of call: under the message id its arguments streamed with,
// carrying them whole.
func callEvent(run Run, agent string, call llm.ToolCall, data map[string]any) events.Event {
	ev := toolEvent(run, events.TypeToolCall, agent, call.Name, call.Arguments, data)
	ev.MessageID, ev.Final = call.MessageID, true
	if ev.MessageID == "" {
		ev.MessageID = uuid.NewString()
	}
	return ev
}

// cut answers a call the output limit cut: it does not run, the model is told what was cut and how
// to split the work, and the user sees why the call they watched being written was dropped.
func (e *Engine) cut(ctx context.Context, h Host, run Run, st *State, f *Frame, call llm.ToolCall, lim Limits) (Result, bool, error) {
	observe(f, call, call.Cut, true)
	f.Invalid++
	if err := h.Emit(ctx, callEvent(run, f.Agent, call, map[string]any{"call_id": call.ID, "cut": true}), nil); err != nil {
		return Result{}, false, err
	}
	// The call's result closes it in the UI like any other, saying why it did not run.
	text := fmt.Sprintf("Not run: the output limit cut this call off before its arguments were complete; %s was asked to split the work into smaller calls.",
		display(f.Agent))
	if err := h.Emit(ctx, toolEvent(run, events.TypeToolResult, f.Agent, call.Name, text,
		map[string]any{"call_id": call.ID, "is_error": true, "stop_reason": "length"}), nil); err != nil {
		return Result{}, false, err
	}
	return e.tooManyInvalid(ctx, h, run, st, f, lim)
}

// resolve handles one tool call of the top frame. done means the run's execution ends with res.
func (e *Engine) resolve(ctx context.Context, h Host, run Run, st *State, call llm.ToolCall, lim Limits) (res Result, done bool, err error) {
	f := &st.Frames[len(st.Frames)-1]
	agent, _ := e.Registry.Get(f.Agent)
	if call.Cut != "" {
		return e.cut(ctx, h, run, st, f, call, lim)
	}
	spec, known := tools.Lookup(call.Name)
	switch {
	case !known:
		return e.refuse(ctx, h, run, st, f, call, fmt.Sprintf("unknown tool %q", call.Name), lim)
	case !agent.Allows(call.Name):
		return e.refuse(ctx, h, run, st, f, call, fmt.Sprintf("tool %q is not allowed for %s; it was not executed", call.Name, agent.Name), lim)
	}
	args, err := spec.Decode(call.Arguments)
	if err != nil {
		return e.refuse(ctx, h, run, st, f, call, err.Error(), lim)
	}
	f.Invalid = 0
	sig := call.Name + " " + compactJSON(call.Arguments)
	f.Recent = append(f.Recent, sig)
	if len(f.Recent) > 8 {
		f.Recent = f.Recent[len(f.Recent)-8:]
	}
	if n := lim.Repetition; n > 0 && len(f.Recent) >= n {
		same := true
		for _, s := range f.Recent[len(f.Recent)-n:] {
			same = same && s == sig
		}
		if same {
			return Result{Outcome: Stopped, Reason: fmt.Sprintf("%s repeated the same %s call %d times", f.Agent, call.Name, n)}, true, nil
		}
	}
	st.ToolCalls++
	if lim.MaxToolCalls > 0 && st.ToolCalls > lim.MaxToolCalls {
		return Result{Outcome: Stopped, Reason: fmt.Sprintf("the tool call limit (%d) was reached", lim.MaxToolCalls)}, true, nil
	}
	if err := h.Emit(ctx, callEvent(run, f.Agent, call, map[string]any{"call_id": call.ID, "arguments": rawJSON(call.Arguments)}), nil); err != nil {
		return Result{}, false, err
	}
	if spec.Control {
		return e.control(ctx, h, run, st, call)
	}
	key := fmt.Sprintf("f%d:%s", f.ID, call.ID)
	started, prev, err := h.BeginTool(ctx, key, call.Name)
	if err != nil {
		return Result{}, false, err
	}
	var out tools.Result
	switch {
	case !started && prev.State == "done":
		out = tools.Result{Output: prev.Result, IsError: prev.Error}
	case !started && spec.SideEffects:
		// The replica that started this call died before recording its result. Running it again
		// could duplicate its effect, so the model is told instead and can check.
		out = tools.Result{Output: "this call was interrupted by a server failure; whether it took effect is unknown, and it was not repeated. Check the workspace before retrying.", IsError: true}
	default:
		out, err = e.Tools.Execute(ctx, tools.Call{SessionID: run.SessionID, OwnerID: run.OwnerID, RunID: run.RunID, Agent: f.Agent,
			ID: call.ID, Tool: call.Name, Args: call.Arguments, Decoded: args, WritePrefix: agent.WritePrefix,
			Progress: newToolProgress(ctx, h, run, f.Agent, call)})
		if err != nil {
			return Result{}, false, err
		}
		if err := h.EndTool(ctx, key, store.ToolRecord{Tool: call.Name, Result: out.Output, Error: out.IsError}); err != nil {
			return Result{}, false, err
		}
	}
	observe(f, call, out.Output, out.IsError)
	if err := h.Emit(ctx, toolEvent(run, events.TypeToolResult, f.Agent, call.Name, truncate(out.Output, 4000),
		map[string]any{"call_id": call.ID, "is_error": out.IsError}), nil); err != nil {
		return Result{}, false, err
	}
	// A failed command may still have changed files: whatever changed is announced.
	if len(out.Paths) > 0 {
		if err := h.Emit(ctx, fileChangeEvent(run, f.Agent, call, out.Paths, false), nil); err != nil {
			return Result{}, false, err
		}
	}
	for _, a := range out.Artifacts {
		if err := h.Emit(ctx, artifactEvent(run, f.Agent, call, a), nil); err != nil {
			return Result{}, false, err
		}
	}
	return Result{}, false, nil
}

func (e *Engine) control(ctx context.Context, h Host, run Run, st *State, call llm.ToolCall) (Result, bool, error) {
	f := &st.Frames[len(st.Frames)-1]
	spec, _ := tools.Lookup(call.Name)
	isLead := f.Agent == registry.LeadName
	switch call.Name {
	case tools.PlanAppend:
		var a struct {
			Tasks []Task `json:"tasks"`
		}
		_ = spec.Parse(call.Arguments, &a)
		for _, t := range a.Tasks {
			if t.ID == "" {
				t.ID = fmt.Sprintf("t%d", len(st.Plan)+1)
			}
			t.Status = "todo"
			st.Plan = append(st.Plan, t)
		}
		observe(f, call, fmt.Sprintf("plan has %d tasks", len(st.Plan)), false)
		return Result{}, false, e.emitPlan(ctx, h, run, st, events.TypePlan, "plan updated")
	case tools.PlanUpdate:
		var a struct {
			TaskID string `json:"task_id"`
			Status string `json:"status"`
			Note   string `json:"note"`
		}
		_ = spec.Parse(call.Arguments, &a)
		for i := range st.Plan {
			if st.Plan[i].ID == a.TaskID {
				if a.Status != "" {
					st.Plan[i].Status = a.Status
				}
				if a.Note != "" {
					st.Plan[i].Note = a.Note
				}
				observe(f, call, "task "+a.TaskID+" updated", false)
				ev := toolEvent(run, events.TypeTask, f.Agent, call.Name, st.Plan[i].Title+": "+st.Plan[i].Status, map[string]any{"task": taskMap(st.Plan[i])})
				return Result{}, false, h.Emit(ctx, ev, nil)
			}
		}
		observe(f, call, "error: no task "+a.TaskID, true)
		return Result{}, false, nil
	case tools.PlanFinish:
		observe(f, call, "plan finished", false)
		return Result{}, false, e.emitPlan(ctx, h, run, st, events.TypePlan, "plan finished")
	case tools.SendMessage:
		var a struct{ To, Content string }
		_ = spec.Parse(call.Arguments, &a)
		to := strings.ToLower(a.To)
		if !isLead {
			if to != registry.LeadName {
				observe(f, call, "error: members report to "+registry.LeadName+" only", true)
				return Result{}, false, nil
			}
			observe(f, call, "delivered", false)
			e.pop(st, a.Content)
			return Result{}, false, nil
		}
		if _, ok := e.Registry.Get(to); !ok || to == registry.LeadName {
			observe(f, call, fmt.Sprintf("error: %q is not a team member (members: %s)", a.To, strings.Join(e.Registry.Members(), ", ")), true)
			return Result{}, false, nil
		}
		for i := range st.Plan {
			if st.Plan[i].Assignee == to && st.Plan[i].Status == "todo" {
				st.Plan[i].Status = "in_progress"
				ev := toolEvent(run, events.TypeTask, f.Agent, call.Name, st.Plan[i].Title+": in_progress", map[string]any{"task": taskMap(st.Plan[i])})
				if err := h.Emit(ctx, ev, nil); err != nil {
					return Result{}, false, err
				}
				break
			}
		}
		st.Frames = append(st.Frames, Frame{ID: st.NextFrameID, Agent: to, ParentCall: call.ID,
			Messages: []llm.Message{{Role: llm.RoleUser, Content: "Task from mike: " + a.Content}}})
		st.NextFrameID++
		ev := toolEvent(run, events.TypeStatus, f.Agent, call.Name, fmt.Sprintf("%s → %s: %s", f.Agent, to, a.Content), map[string]any{"to": to})
		return Result{}, false, h.Emit(ctx, ev, nil)
	case tools.ReplyToHuman:
		var a struct{ Content string }
		_ = spec.Parse(call.Arguments, &a)
		m := events.Message{ID: uuid.NewString(), SessionID: run.SessionID, Sender: senderOf(f.Agent), Content: a.Content,
			Timestamp: time.Now().UTC(), Agent: f.Agent, RunID: run.RunID}
		observe(f, call, "delivered to the user", false)
		return Result{}, false, h.Emit(ctx, m.Event(), &m)
	case tools.AskHuman:
		var a struct{ Question string }
		_ = spec.Parse(call.Arguments, &a)
		key := fmt.Sprintf("f%d:%s", f.ID, call.ID)
		if st.WaitingCall == key && st.Answer != "" {
			observe(f, call, "the user answered: "+st.Answer, false)
			st.WaitingCall, st.Answer = "", ""
			return Result{}, false, nil
		}
		st.WaitingCall = key
		m := events.Message{ID: uuid.NewString(), SessionID: run.SessionID, Sender: senderOf(f.Agent), Content: a.Question,
			Timestamp: time.Now().UTC(), Agent: f.Agent, RunID: run.RunID}
		ev := m.Event()
		ev.Data = map[string]any{"question": true, "call_id": call.ID}
		if err := h.Emit(ctx, ev, &m); err != nil {
			return Result{}, false, err
		}
		return Result{Outcome: Waiting, Reason: a.Question}, true, nil
	case tools.End:
		var a struct{ Summary string }
		_ = spec.Parse(call.Arguments, &a)
		observe(f, call, "ended", false)
		if isLead {
			st.Frames = nil
			return Result{Outcome: Completed, Reason: a.Summary}, true, nil
		}
		e.pop(st, a.Summary)
		return Result{}, false, nil
	}
	observe(f, call, "error: unhandled tool "+call.Name, true)
	return Result{}, false, nil
}

func (e *Engine) emitPlan(ctx context.Context, h Host, run Run, st *State, typ, content string) error {
	tasks := make([]any, 0, len(st.Plan))
	for _, t := range st.Plan {
		tasks = append(tasks, taskMap(t))
	}
	return h.Emit(ctx, toolEvent(run, typ, registry.LeadName, "", content, map[string]any{"tasks": tasks}), nil)
}

func taskMap(t Task) map[string]any {
	deps := make([]any, 0, len(t.DependsOn))
	for _, d := range t.DependsOn {
		deps = append(deps, d)
	}
	return map[string]any{"id": t.ID, "title": t.Title, "assignee": t.Assignee, "status": t.Status, "note": t.Note, "depends_on": deps}
}

func compactJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// rawJSON turns arguments into a value for an event's data (structpb needs plain values).
func rawJSON(s string) any {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func jsonValid(s string) bool { return json.Valid([]byte(s)) }
