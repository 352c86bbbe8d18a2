package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
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
// the run's records. Every method fails once another replica owns the run.
type Host interface {
	// Emit appends an event to the session's log (chat lines also to its history).
	Emit(ctx context.Context, ev *agentdv1.Event) error
	// Token streams a piece of a message being generated (buffered, best effort).
	Token(ctx context.Context, messageID, agent, text string)
	// ToolCallDelta streams a piece of a tool call's arguments as the model writes them (buffered,
	// best effort); the final tool_call event with the same message id replaces the pieces.
	ToolCallDelta(ctx context.Context, messageID, agent, tool, args string)
	// Checkpoint saves the state and adds a step's usage to the run and its session.
	Checkpoint(ctx context.Context, st *State, u Usage) error
	// BeginTool records that the call under key is about to run. When the call has a record already
	// (it ran, or started on a replica that died), started is false and prev is that record.
	BeginTool(ctx context.Context, key, tool string) (started bool, prev ToolRecord, err error)
	EndTool(ctx context.Context, key, tool string, rec ToolRecord) error
	// Inbox returns the messages the user posted to the run while it was active, from the from-th on.
	Inbox(ctx context.Context, from int) ([]string, error)
}

// Usage is what one step cost: its tokens (cache counts are part of the input) and their price.
type Usage struct {
	llm.Usage
	CostUSD float64
}

// ToolRecord is what is known of a sandbox tool call: whether it finished, and its result.
type ToolRecord struct {
	Done    bool
	Output  string
	IsError bool
}

// SandboxTools executes the sandbox tools.
type SandboxTools interface {
	Execute(ctx context.Context, c tools.Call) (tools.Result, error)
}

// Limits bound one run.
type Limits struct {
	// MaxSteps bounds the lead's model calls per run; MemberSteps a member's per task it is given.
	MaxSteps    int
	MemberSteps int
	// MaxToolCalls and MaxTokens bound the whole team's run.
	MaxToolCalls int
	MaxTokens    int64
	// Repetition is how many identical consecutive tool calls with identical results of one agent
	// earn it a warning; one more ends its step (the run, for the lead).
	Repetition int
	// MaxInvalid is how many consecutive unusable outputs end an agent's step.
	MaxInvalid int
}

// Context bounds what one model request carries.
type Context struct {
	// Budget is the most tokens a request may carry; past it the conversation is condensed.
	Budget int
	// KeepToolOutputs is how many of the latest tool outputs stay verbatim; older ones are masked.
	KeepToolOutputs int
}

// Engine executes runs.
type Engine struct {
	Registry *registry.Registry
	Provider llm.Provider
	Tools    SandboxTools
	Limits   Limits
	Context  Context
	// Briefer describes the project to the lead at a run's start and to each member it delegates
	// to; nil gives no brief.
	Briefer Briefer
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
	// LeadToolChoice requires the lead to call a tool every turn (tool_choice "required" / "any"),
	// so it cannot end a run by answering in plain text.
	LeadToolChoice bool
}

// Run identifies the run being executed.
type Run struct {
	SessionID string
	OwnerID   string
	RunID     string
}

// scope is where the run's events go.
func (r Run) scope() events.Scope { return events.Scope{SessionID: r.SessionID, RunID: r.RunID} }

// ErrProvider wraps a model failure; the run fails with a visible error event. A conversation that
// outgrew the model's context window even after condensing also matches llm.ErrContextLength.
var ErrProvider = errors.New("model provider failed")

var errShortConversation = errors.New("workflow: a stored conversation is shorter than its checkpoint says")

func (e *Engine) limits() Limits {
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

// memberSteps is a member's budget of model calls per task.
func (e *Engine) memberSteps(agent registry.Agent, lim Limits) int {
	if agent.Limits.MaxSteps > 0 {
		return agent.Limits.MaxSteps
	}
	return lim.MemberSteps
}

// Execute advances the run from st until it completes, waits for the user, or is stopped.
func (e *Engine) Execute(ctx context.Context, h Host, run Run, st *State) (Result, error) {
	lim := e.limits()
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		f := st.top()
		if call, ok := st.pendingCall(f); ok {
			res, done, err := e.resolve(ctx, h, run, st, call, lim)
			if err != nil {
				return Result{}, err
			}
			if err := h.Checkpoint(ctx, st, Usage{}); err != nil {
				return Result{}, err
			}
			if done {
				return res, nil
			}
			continue
		}
		lead := len(st.Frames) == 1
		if lead {
			if err := e.deliver(ctx, h, run, st); err != nil {
				return Result{}, err
			}
		}
		agent, ok := e.Registry.Get(f.Agent)
		if !ok {
			return Result{}, fmt.Errorf("workflow: agent %q is not in the registry", f.Agent)
		}
		switch {
		case lead && lim.MaxSteps > 0 && st.LeadSteps >= lim.MaxSteps:
			return Result{Outcome: Stopped, Reason: fmt.Sprintf("the step limit (%d model calls of %s) was reached", lim.MaxSteps, events.Display(f.Agent))}, nil
		case lim.MaxTokens > 0 && st.Tokens >= lim.MaxTokens:
			return Result{Outcome: Stopped, Reason: fmt.Sprintf("the token limit (%d) was reached", lim.MaxTokens)}, nil
		case !lead && e.memberSteps(agent, lim) > 0 && f.Steps >= e.memberSteps(agent, lim):
			reason := fmt.Sprintf("%s used its budget of %d model calls for this task", events.Display(f.Agent), f.Steps)
			if err := h.Emit(ctx, run.scope().Status(f.Agent, reason+"; its step ends and Mike decides what next.", map[string]any{"budget": f.Steps})); err != nil {
				return Result{}, err
			}
			e.pop(st, "failed: "+reason+". Its work so far is kept: giving it a task again resumes its conversation.")
			if err := h.Checkpoint(ctx, st, Usage{}); err != nil {
				return Result{}, err
			}
			continue
		}
		res, done, err := e.turn(ctx, h, run, st, agent)
		if err != nil {
			return Result{}, err
		}
		if done {
			return res, nil
		}
	}
}

// deliver hands the lead what the user wrote since its last turn: messages posted while the run was
// active, and a resumed run's new request.
func (e *Engine) deliver(ctx context.Context, h Host, run Run, st *State) error {
	msgs, err := h.Inbox(ctx, st.Inbox)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		st.Pending = append(st.Pending, "The user wrote while the team was working:\n"+m)
		st.Inbox++
		st.Request = m
	}
	if len(st.Pending) == 0 {
		return nil
	}
	f := st.top()
	text := strings.Join(st.Pending, "\n\n")
	text += "\n\nRead this before anything else: it may change the plan. Answer the user with reply_to_human."
	st.add(f, llm.Message{Role: llm.RoleUser, Content: text, Pinned: true})
	st.Pending = nil
	st.Replied = false
	f.Asked, f.Urged = false, false
	return nil
}

// askToContinue is what the lead is told, once, after answering without calling a tool.
const askToContinue = "You answered without calling a tool, and the user saw that text. A run only ends with the end tool: " +
	"if the work is not finished, go on with your tools now (delegate with send_message, check with file_read); " +
	"if it is, make sure the user has your answer (reply_to_human) and call end."

// turn asks the top frame's agent for its next move. done means the run's execution ends with res.
func (e *Engine) turn(ctx context.Context, h Host, run Run, st *State, agent registry.Agent) (res Result, done bool, err error) {
	f := st.top()
	model := agent.Model
	if model == "" {
		model = e.Model
	}
	lead := agent.Name == registry.LeadName
	msgID := uuid.NewString()
	resp, segments, err := e.completeWithin(ctx, h, run, st, f, agent, model, msgID, lead && e.LeadToolChoice)
	if err != nil {
		return Result{}, false, err
	}
	usage, err := e.account(ctx, h, run, st, agent.Name, firstNonEmpty(model, resp.Model), resp.Usage)
	if err != nil {
		return Result{}, false, err
	}
	st.Steps += segments
	f.Steps += segments
	if lead {
		st.LeadSteps += segments
	}
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
	for _, m := range st.conv(f).Messages {
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
	st.add(f, llm.Message{Role: llm.RoleAssistant, Content: content, ToolCalls: resp.ToolCalls})
	text := strings.TrimSpace(resp.Content)
	if text != "" {
		if err := h.Emit(ctx, run.scope().Message(msgID, events.SenderOf(agent.Name), agent.Name, text)); err != nil {
			return Result{}, false, err
		}
	}
	if len(resp.ToolCalls) > 0 {
		f.Asked = false
		return Result{}, false, h.Checkpoint(ctx, st, usage)
	}
	if resp.Stop == llm.StopLength && text != "" {
		// Continued as often as allowed and still cut: the answer stands, incomplete, and says so.
		msg := fmt.Sprintf("%s's answer was cut by the output limit; it ends incomplete.", events.Display(agent.Name))
		if segments > 1 {
			msg = fmt.Sprintf("%s's answer was still cut by the output limit after %d continuations; it ends incomplete.",
				events.Display(agent.Name), segments-1)
		}
		if err := h.Emit(ctx, run.scope().Status(agent.Name, msg, map[string]any{"stop_reason": resp.StopReason})); err != nil {
			return Result{}, false, err
		}
	}
	switch reason := unanswered(agent.Name, resp, refused); {
	case reason != "":
		// A refusal, a filtered answer or an answer lost to the output limit never passes for a
		// finished step: the user sees why, and the lead decides what to do about a member's.
		data := map[string]any{"stop_reason": firstNonEmpty(resp.StopReason, string(resp.Stop))}
		if err := h.Emit(ctx, run.scope().Status(agent.Name, reason, data)); err != nil {
			return Result{}, false, err
		}
		if lead {
			if err := h.Checkpoint(ctx, st, usage); err != nil {
				return Result{}, false, err
			}
			return Result{Outcome: Stopped, Reason: strings.TrimSuffix(reason, ".")}, true, nil
		}
		e.pop(st, "failed: "+reason)
	case lead && !f.Asked:
		// The lead may not end a run by answering in plain text: it is asked, once, to go on.
		f.Asked = true
		st.add(f, llm.Message{Role: llm.RoleUser, Content: askToContinue})
	case lead:
		// Asked once already: its text stands as its final word to the user.
		if text != "" {
			st.Replied, st.Summary = true, text
		}
		if err := h.Checkpoint(ctx, st, usage); err != nil {
			return Result{}, false, err
		}
		return Result{Outcome: Completed}, true, nil
	default:
		// A member's plain answer ends its step: it is its report.
		e.pop(st, resp.Content)
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
			events.Display(agent), resp.MaxTokens)
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

// pop ends the top frame; its report becomes the result of the lead's send_message call. The
// member's conversation stays: a later task resumes it.
func (e *Engine) pop(st *State, report string) {
	child := st.top()
	closeCalls(st.conv(child), "not run: the task ended before this call")
	parentCall := child.ParentCall
	agent := child.Agent
	st.Frames = st.Frames[:len(st.Frames)-1]
	if len(st.Frames) == 0 {
		return
	}
	if strings.TrimSpace(report) == "" {
		report = "(no report)"
	}
	st.add(st.top(), llm.Message{Role: llm.RoleTool, ToolCallID: parentCall, ToolName: tools.SendMessage,
		Content: agent + " reports: " + report})
}

// closeCalls answers the calls of the conversation's last model turn that have no result, so the
// conversation stays valid for providers (every call answered) when it is resumed later.
func closeCalls(c *Conv, why string) {
	last := -1
	for i := len(c.Messages) - 1; i >= 0; i-- {
		if c.Messages[i].Role == llm.RoleAssistant {
			last = i
			break
		}
	}
	if last < 0 {
		return
	}
	answered := map[string]bool{}
	for _, m := range c.Messages[last+1:] {
		if m.Role == llm.RoleTool {
			answered[m.ToolCallID] = true
		}
	}
	for _, call := range c.Messages[last].ToolCalls {
		if !answered[call.ID] {
			c.Messages = append(c.Messages, llm.Message{Role: llm.RoleTool, ToolCallID: call.ID, ToolName: call.Name, Content: why, IsError: true})
		}
	}
}

func (st *State) observe(f *Frame, call llm.ToolCall, out string, isErr bool) {
	st.add(f, llm.Message{Role: llm.RoleTool, ToolCallID: call.ID, ToolName: call.Name, Content: out, IsError: isErr})
}

func (e *Engine) refuse(ctx context.Context, h Host, run Run, st *State, f *Frame, call llm.ToolCall, why string, lim Limits) (Result, bool, error) {
	st.observe(f, call, "error: "+why, true)
	f.Invalid++
	ev := run.scope().Error(f.Agent, why, map[string]any{"call_id": call.ID})
	ev.Tool = &call.Name
	if err := h.Emit(ctx, ev); err != nil {
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
		if err := h.Emit(ctx, run.scope().Status(f.Agent, reason+"; its step ends", nil)); err != nil {
			return Result{}, false, err
		}
		e.pop(st, "failed: "+reason)
	}
	return Result{}, false, nil
}

// callEvent is the final tool_call event of call: under the message id its arguments streamed with,
// carrying them whole.
func callEvent(run Run, agent string, call llm.ToolCall, data map[string]any) *agentdv1.Event {
	return run.scope().ToolCall(agent, call.Name, call.MessageID, call.Arguments, data)
}

// cut answers a call the output limit cut: it does not run, the model is told what was cut and how
// to split the work, and the user sees why the call they watched being written was dropped.
func (e *Engine) cut(ctx context.Context, h Host, run Run, st *State, f *Frame, call llm.ToolCall, lim Limits) (Result, bool, error) {
	st.observe(f, call, call.Cut, true)
	f.Invalid++
	if err := h.Emit(ctx, callEvent(run, f.Agent, call, map[string]any{"call_id": call.ID, "cut": true})); err != nil {
		return Result{}, false, err
	}
	// The call's result closes it in the UI like any other, saying why it did not run.
	text := fmt.Sprintf("Not run: the output limit cut this call off before its arguments were complete; %s was asked to split the work into smaller calls.",
		events.Display(f.Agent))
	if err := h.Emit(ctx, run.scope().Tool(events.TypeToolResult, f.Agent, call.Name, text,
		map[string]any{"call_id": call.ID, "is_error": true, "stop_reason": "length"})); err != nil {
		return Result{}, false, err
	}
	return e.tooManyInvalid(ctx, h, run, st, f, lim)
}

// resolve handles one tool call of the top frame. done means the run's execution ends with res.
func (e *Engine) resolve(ctx context.Context, h Host, run Run, st *State, call llm.ToolCall, lim Limits) (res Result, done bool, err error) {
	f := st.top()
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
	st.ToolCalls++
	if lim.MaxToolCalls > 0 && st.ToolCalls > lim.MaxToolCalls {
		return Result{Outcome: Stopped, Reason: fmt.Sprintf("the tool call limit (%d) was reached", lim.MaxToolCalls)}, true, nil
	}
	if err := h.Emit(ctx, callEvent(run, f.Agent, call, map[string]any{"call_id": call.ID, "arguments": rawJSON(call.Arguments)})); err != nil {
		return Result{}, false, err
	}
	if spec.Control {
		return e.control(ctx, h, run, st, call, lim)
	}
	key := fmt.Sprintf("f%d:%s", f.ID, call.ID)
	started, prev, err := h.BeginTool(ctx, key, call.Name)
	if err != nil {
		return Result{}, false, err
	}
	var out tools.Result
	switch {
	case !started && prev.Done:
		out = tools.Result{Output: prev.Output, IsError: prev.IsError}
	case !started && spec.SideEffects:
		// The replica that started this call died before recording its result. Running it again
		// could duplicate its effect, so the model is told instead and can check.
		out = tools.Result{Output: interrupted, IsError: true}
	default:
		out, err = e.Tools.Execute(ctx, tools.Call{SessionID: run.SessionID, OwnerID: run.OwnerID, RunID: run.RunID, Agent: f.Agent,
			ID: call.ID, Tool: call.Name, Args: call.Arguments, Decoded: args, WritePrefix: agent.WritePrefix,
			Progress: newToolProgress(ctx, h, run, f.Agent, call)})
		if err != nil {
			return Result{}, false, err
		}
		if err := h.EndTool(ctx, key, call.Name, ToolRecord{Done: true, Output: out.Output, IsError: out.IsError}); err != nil {
			return Result{}, false, err
		}
	}
	if err := h.Emit(ctx, run.scope().Tool(events.TypeToolResult, f.Agent, call.Name, truncate(out.Output, 4000),
		map[string]any{"call_id": call.ID, "is_error": out.IsError})); err != nil {
		return Result{}, false, err
	}
	// A failed command may still have changed files: whatever changed is announced.
	if len(out.Paths) > 0 {
		if err := h.Emit(ctx, fileChangeEvent(run, f.Agent, call, out.Paths, false)); err != nil {
			return Result{}, false, err
		}
	}
	for _, a := range out.Artifacts {
		if err := h.Emit(ctx, artifactEvent(run, f.Agent, call, a)); err != nil {
			return Result{}, false, err
		}
	}
	if out.Checkpoint != nil {
		if err := h.Emit(ctx, checkpointEvent(run, f.Agent, call, out.Checkpoint)); err != nil {
			return Result{}, false, err
		}
	}
	return e.observeOnce(ctx, h, run, st, f, call, out.Output, out.Same, out.IsError, lim)
}

// interrupted is the result of a side-effecting call whose replica died before recording its result.
const interrupted = "this call was interrupted by a server failure; whether it took effect is unknown, and it was not repeated. Check the workspace before retrying."

// observeOnce gives the agent a call's result, judging repetition on the call and its result
// together: the same call with the same result Repetition times in a row earns one warning with the
// result; once more ends the agent's step (the run, for the lead). A call whose result changes —
// polling a server that is still compiling — is never a repetition.
// key, when not empty, stands for out in that judgement (tools.Result.Same).
func (e *Engine) observeOnce(ctx context.Context, h Host, run Run, st *State, f *Frame, call llm.ToolCall, out, key string, isErr bool, lim Limits) (Result, bool, error) {
	n := lim.Repetition
	if n <= 0 {
		st.observe(f, call, out, isErr)
		return Result{}, false, nil
	}
	if key == "" {
		key = out
	}
	sum := sha256.Sum256([]byte(key))
	sig := call.Name + " " + compactJSON(call.Arguments) + " => " + hex.EncodeToString(sum[:8])
	f.Recent = append(f.Recent, sig)
	if len(f.Recent) > n+1 {
		f.Recent = f.Recent[len(f.Recent)-n-1:]
	}
	same := 0
	for i := len(f.Recent) - 1; i >= 0 && f.Recent[i] == sig; i-- {
		same++
	}
	switch {
	case same < n:
		st.observe(f, call, out, isErr)
		return Result{}, false, nil
	case f.Nudged != sig:
		f.Nudged = sig
		st.observe(f, call, out+"\n\n"+fmt.Sprintf(repeatWarning, same, call.Name), isErr)
		ev := run.scope().Status(f.Agent, fmt.Sprintf("%s repeated the same %s call with the same result %d times and was asked to change its approach.",
			events.Display(f.Agent), call.Name, same), map[string]any{"repeated": call.Name})
		return Result{}, false, h.Emit(ctx, ev)
	}
	st.observe(f, call, out, isErr)
	reason := fmt.Sprintf("%s repeated the same %s call with the same result %d times, after a warning", f.Agent, call.Name, same)
	if len(st.Frames) == 1 {
		return Result{Outcome: Stopped, Reason: reason}, true, nil
	}
	if err := h.Emit(ctx, run.scope().Status(f.Agent, reason+"; its step ends.", nil)); err != nil {
		return Result{}, false, err
	}
	e.pop(st, "failed: "+reason+". It was stuck; give it different instructions or another approach.")
	return Result{}, false, nil
}

const repeatWarning = "WARNING: you made this exact %[2]s call with the same arguments and got the same result %[1]d times in a row — " +
	"repeating it will not change anything. Change your approach: read the error, inspect the files or logs, " +
	"or try a different command. Repeating it once more ends your task."

func compactJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// rawJSON turns arguments into a value for an event's data.
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
