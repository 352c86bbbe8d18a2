package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
)

// Context management, after OpenHands' condensers: every request masks old observations (recent
// tool outputs verbatim, older ones reduced to a stub), and a conversation whose request would pass
// the context budget is condensed — its older part replaced by a summary written by the model, the
// messages that must never be lost (tasks, the user's words) kept verbatim. A request the provider
// still rejects as too long is condensed harder and retried instead of failing the run.

const (
	// maskedOutput is how long an old tool output may be and still go verbatim.
	maskedOutput = 600
	// maskedArgument is how long a string argument of an old call may be (file contents, code).
	maskedArgument = 300
	// contextRetries bounds the condense-and-retry rounds of one turn.
	contextRetries = 2
	// summaryTokens caps the summary the model writes.
	summaryTokens = 2048
)

// BriefHeading opens the project brief a Briefer writes: what follows it in a task or request is
// the brief, which condensation drops as stale.
const BriefHeading = "## Project brief"

// condensedMarker opens the message that stands for a condensed part of a conversation.
const condensedMarker = "[This conversation was condensed to fit the model's context window.]"

// budget is the most tokens a request may carry in this run.
func (e *Engine) budget(st *State) int {
	b := e.Context.Budget
	if st.ContextCap > 0 && (b <= 0 || st.ContextCap < b) {
		b = st.ContextCap
	}
	return b
}

// estimate guesses a request's tokens from its encoded size (≈4 bytes a token for English, code and
// JSON), with a small cost per message: conservative, so the real request stays under the budget.
func estimate(system string, tls []llm.Tool, msgs []llm.Message) int {
	n := len(system)
	for _, t := range tls {
		n += len(t.Name) + len(t.Description) + len(t.Parameters)
	}
	for _, m := range msgs {
		b, _ := json.Marshal(m)
		n += len(b) + 48
	}
	return n/4 + 1
}

// view is what a request carries of a conversation: the latest keep tool outputs verbatim, older ones
// masked to a stub, and the bulky string arguments of older calls (file contents, code) elided. Reports
// of members stay whole: they are what the lead works from.
func view(msgs []llm.Message, keep int) []llm.Message {
	if keep <= 0 {
		return msgs
	}
	// The boundary is the keep-th most recent tool output: what comes before it is old.
	boundary, seen := 0, 0
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == llm.RoleTool {
			if seen++; seen == keep {
				boundary = i
				break
			}
		}
	}
	if boundary == 0 {
		return msgs
	}
	out := make([]llm.Message, len(msgs))
	copy(out, msgs)
	for i := range boundary {
		m := &out[i]
		switch m.Role {
		case llm.RoleTool:
			if m.ToolName != tools.SendMessage && len(m.Content) > maskedOutput {
				m.Content = maskOutput(m.ToolName, m.Content)
			}
		case llm.RoleAssistant:
			if len(m.ToolCalls) == 0 {
				continue
			}
			calls := make([]llm.ToolCall, len(m.ToolCalls))
			copy(calls, m.ToolCalls)
			for j := range calls {
				calls[j].Arguments = maskArguments(calls[j].Arguments)
			}
			m.ToolCalls = calls
		}
	}
	return out
}

// maskOutput keeps the head of an old output, so the model remembers what it was, and says how to
// see it again.
func maskOutput(tool, s string) string {
	head := s[:min(len(s), 240)]
	if i := strings.LastIndexByte(head, '\n'); i > 80 {
		head = head[:i]
	}
	head = strings.ToValidUTF8(head, "")
	return fmt.Sprintf("%s\n[… older output of %s masked to save context: %d characters in all; call the tool again if you need it]", head, tool, len(s))
}

// maskArguments elides long string values of an old call's arguments, keeping the JSON valid.
func maskArguments(args string) string {
	if len(args) <= 2*maskedArgument {
		return args
	}
	var v map[string]any
	if json.Unmarshal([]byte(args), &v) != nil {
		return args
	}
	changed := false
	for k, x := range v {
		if s, ok := x.(string); ok && len(s) > maskedArgument {
			v[k] = fmt.Sprintf("%s[… %d characters elided from this older call]", strings.ToValidUTF8(s[:120], ""), len(s))
			changed = true
		}
	}
	if !changed {
		return args
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// completeWithin runs the frame's next model turn within the context budget: the conversation is
// masked, condensed first when the request would pass the budget, and condensed harder and retried
// when the provider still finds it too long. Failed attempts' usage is billed to the run.
func (e *Engine) completeWithin(ctx context.Context, h Host, run Run, st *State, f *Frame, agent registry.Agent, model, msgID string, requireTool bool) (llm.Response, int, error) {
	system := e.system(agent)
	tls := tools.ForLLM(agent.Tools)
	for attempt := 0; ; attempt++ {
		keep := e.Context.KeepToolOutputs
		msgs := view(st.conv(f).Messages, keep)
		if b := e.budget(st); b > 0 && estimate(system, tls, msgs) > b {
			if _, err := e.condense(ctx, h, run, st, f, agent, model, b, keep); err != nil {
				return llm.Response{}, 0, err
			}
			// When even the latest outputs do not fit (a small window, huge outputs), fewer of
			// them go verbatim.
			for msgs = view(st.conv(f).Messages, keep); keep > 1 && estimate(system, tls, msgs) > b; {
				keep--
				msgs = view(st.conv(f).Messages, keep)
			}
		}
		resp, segments, err := e.complete(ctx, h, run, agent, model, msgID, system, tls, msgs, requireTool)
		if err == nil {
			return resp, segments, nil
		}
		// What the failed attempts consumed is billed all the same, so it is recorded.
		if resp.Usage != (llm.Usage{}) {
			if u, aerr := e.account(ctx, h, run, st, agent.Name, firstNonEmpty(model, resp.Model), resp.Usage); aerr == nil {
				_ = h.Checkpoint(context.WithoutCancel(ctx), st, u)
			}
		}
		if ctx.Err() != nil {
			return llm.Response{}, 0, ctx.Err()
		}
		if errors.Is(err, llm.ErrContextLength) && attempt < contextRetries {
			// The provider's window is smaller than the budget assumed: remember a budget inside
			// it for the rest of the run — the window the provider named, or less than what it
			// refused — and condense to it.
			limit := estimate(system, tls, msgs) * 8 / 10
			if window := contextWindow(err); window > 0 {
				limit = min(limit, window*8/10)
			}
			if st.ContextCap == 0 || limit < st.ContextCap {
				st.ContextCap = limit
			}
			ok, cerr := e.condense(ctx, h, run, st, f, agent, model, limit, e.Context.KeepToolOutputs)
			if cerr != nil {
				return llm.Response{}, 0, cerr
			}
			if ok {
				continue
			}
		}
		return llm.Response{}, segments, fmt.Errorf("%w: %w", ErrProvider, err)
	}
}

// condense replaces the older part of the frame's conversation with a summary so that a request
// fits within budget tokens, keeping pinned messages verbatim and the latest turns whole. It
// reports false when nothing is left to condense.
func (e *Engine) condense(ctx context.Context, h Host, run Run, st *State, f *Frame, agent registry.Agent, model string, budget, keep int) (bool, error) {
	c := st.conv(f)
	msgs := c.Messages
	// The tail kept whole is at most half the budget as it will be sent (old outputs masked), at
	// least the last turn, and starts at a model turn or a user message: never at a tool result,
	// whose call would be summarised away.
	sent := view(msgs, keep)
	cut := lastTurn(msgs)
	size := estimate("", nil, sent[cut:])
	for i := cut - 1; i >= 1; i-- {
		if size += estimate("", nil, sent[i:i+1]); size > budget/2 {
			break
		}
		if msgs[i].Role != llm.RoleTool {
			cut = i
		}
	}
	if cut < 2 {
		return false, nil
	}
	old, tail := msgs[:cut], msgs[cut:]
	before := estimate(e.system(agent), nil, msgs)
	summary, usage, err := e.summarize(ctx, run, st, agent, model, old, budget)
	if err != nil {
		return false, err
	}
	var b strings.Builder
	b.WriteString(condensedMarker)
	b.WriteString("\n\nSummary of the earlier part:\n")
	b.WriteString(strings.TrimSpace(summary))
	if pinned := pinnedText(old, budget/3*4); pinned != "" {
		b.WriteString("\n\nKept verbatim — the tasks and the user's words from that part:\n\n")
		b.WriteString(pinned)
	}
	next := append([]llm.Message{{Role: llm.RoleUser, Content: b.String(), Pinned: true}}, tail...)
	// The stored list only grows: the condensed view is appended after what is stored, and the
	// conversation reads from there on.
	c.Base += c.Saved
	c.Saved = 0
	c.Messages = next
	c.Condensed++
	after := estimate(e.system(agent), nil, next)
	text := fmt.Sprintf("%s's conversation was condensed to fit the model's context: %d earlier messages were summarised (about %d → %d tokens).",
		events.Display(agent.Name), len(old), before, after)
	if err := h.Emit(ctx, run.scope().Status(agent.Name, text, map[string]any{"condensed": len(old), "tokens_before": before, "tokens_after": after})); err != nil {
		return false, err
	}
	return true, h.Checkpoint(ctx, st, usage)
}

func isCondensed(m llm.Message) bool {
	return m.Role == llm.RoleUser && strings.HasPrefix(m.Content, condensedMarker)
}

// lastTurn is the index of the conversation's last model turn (or the message after the last user
// message), the least a condensation keeps.
func lastTurn(msgs []llm.Message) int {
	for i := len(msgs) - 1; i > 0; i-- {
		if msgs[i].Role != llm.RoleTool {
			return i
		}
	}
	return 0
}

// pinnedText joins the pinned messages of a condensed part, within limit bytes: the first (the
// original task or request) and the latest are kept whole, those in between shortened.
func pinnedText(msgs []llm.Message, limit int) string {
	var pinned []string
	for _, m := range msgs {
		if !m.Pinned {
			continue
		}
		// A brief that came with a task is stale by now (the latest task brings a fresh one).
		text, _, _ := strings.Cut(m.Content, "\n\n"+BriefHeading)
		if isCondensed(m) {
			// An earlier condensation's own kept messages.
			_, kept, ok := strings.Cut(text, "Kept verbatim — the tasks and the user's words from that part:\n\n")
			if !ok {
				continue
			}
			text = kept
		}
		pinned = append(pinned, text)
	}
	total := 0
	for _, p := range pinned {
		total += len(p)
	}
	for i := 1; total > limit && i < len(pinned)-1; i++ {
		if len(pinned[i]) > 1000 {
			total -= len(pinned[i]) - 1000
			pinned[i] = strings.ToValidUTF8(pinned[i][:1000], "") + " […]"
		}
	}
	return strings.Join(pinned, "\n\n---\n\n")
}

// summarizerPrompt is the system prompt of the model call that condenses a conversation.
const summarizerPrompt = `You condense the working history of an AI agent on a software team so that it can continue its work with less context. You are given the older part of its conversation; the most recent part stays as it is, and the task messages are kept verbatim elsewhere, so do not repeat them.

Write a dense, factual summary the agent can act on, under 600 words, with these sections (omit a section with nothing to say):
GOAL: what the agent was asked to achieve and the acceptance criteria it knows of.
DONE: what it completed — files created or changed (exact paths) and what they contain, commands that succeeded.
STATE: the current state of the project — running processes and their ports, preview URLs, documents written (paths), decisions made.
ERRORS: errors seen and whether they were fixed (exact messages when short).
OPEN: what remains to be done, and the next step it was about to take.

Keep exact names: paths, ports, URLs, function and component names, commands. Skip build logs, dependency listings and file contents beyond what is needed to continue. Never invent anything that is not in the history.`

// summarize writes the summary of a condensed part: by the model, or — offline, or when that call
// fails — by listing what the agent did.
func (e *Engine) summarize(ctx context.Context, run Run, st *State, agent registry.Agent, model string, old []llm.Message, budget int) (string, Usage, error) {
	if e.Provider.Offline() {
		return actionsSummary(old), Usage{}, nil
	}
	limit := max(budget*4/2, 8000) // bytes of history the summariser reads
	req := llm.Request{Agent: agent.Name, Model: model, System: summarizerPrompt, MaxTokens: summaryTokens,
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "The older part of the conversation of " + events.Display(agent.Name) +
			" (" + agent.Title + "):\n\n" + transcriptOf(old, limit)}}}
	resp, err := e.Retry.Complete(ctx, e.Provider, req, llm.Stream{}, nil)
	var usage Usage
	if resp.Usage != (llm.Usage{}) {
		price, _ := e.Pricing.For(firstNonEmpty(model, resp.Model))
		usage = Usage{Usage: resp.Usage, CostUSD: price.Cost(resp.Usage)}
		st.Tokens += resp.Usage.Total()
		recordUsage(ctx, firstNonEmpty(model, resp.Model, "(provider default)"), resp.Usage, usage.CostUSD)
	}
	if ctx.Err() != nil {
		return "", usage, ctx.Err()
	}
	if err != nil || strings.TrimSpace(resp.Content) == "" {
		// A summary of what was done still lets the agent go on; losing the run would not.
		return actionsSummary(old), usage, nil //nolint:nilerr // the failed summary is replaced, not the run failed
	}
	return resp.Content, usage, nil
}

// transcriptOf renders messages as text for the summariser, within limit bytes (each message is
// shortened first, then the oldest are left out).
func transcriptOf(msgs []llm.Message, limit int) string {
	per := max(limit/max(len(msgs), 1), 400)
	lines := make([]string, 0, len(msgs))
	for _, m := range view(msgs, 0) {
		var b strings.Builder
		switch m.Role {
		case llm.RoleUser:
			b.WriteString("[user/task] ")
			b.WriteString(m.Content)
		case llm.RoleAssistant:
			b.WriteString("[agent] ")
			b.WriteString(m.Content)
			for _, c := range m.ToolCalls {
				fmt.Fprintf(&b, "\n  → %s %s", c.Name, maskArguments(c.Arguments))
			}
		case llm.RoleTool:
			fmt.Fprintf(&b, "[result of %s] ", m.ToolName)
			b.WriteString(m.Content)
		}
		s := b.String()
		if len(s) > per {
			s = strings.ToValidUTF8(s[:per], "") + " […]"
		}
		lines = append(lines, s)
	}
	total := 0
	start := len(lines)
	for start > 0 && total+len(lines[start-1]) <= limit {
		start--
		total += len(lines[start])
	}
	out := strings.Join(lines[start:], "\n")
	if start > 0 {
		out = fmt.Sprintf("[… %d older messages left out]\n", start) + out
	}
	return out
}

// actionsSummary lists what the agent said and did, for when no model writes the summary.
func actionsSummary(msgs []llm.Message) string {
	var lines []string
	results := map[string]string{}
	for _, m := range msgs {
		if m.Role == llm.RoleTool {
			first, _, _ := strings.Cut(strings.TrimSpace(m.Content), "\n")
			results[m.ToolCallID] = first
		}
	}
	for _, m := range msgs {
		if m.Role != llm.RoleAssistant {
			continue
		}
		if t := strings.TrimSpace(m.Content); t != "" {
			lines = append(lines, "- said: "+shorten(t, 200))
		}
		for _, c := range m.ToolCalls {
			line := "- " + c.Name + " " + shorten(maskArguments(c.Arguments), 200)
			if r := results[c.ID]; r != "" {
				line += " → " + shorten(r, 160)
			}
			lines = append(lines, line)
		}
	}
	if len(lines) > 60 {
		lines = append([]string{fmt.Sprintf("- (%d earlier actions left out)", len(lines)-60)}, lines[len(lines)-60:]...)
	}
	if len(lines) == 0 {
		return "(nothing but messages)"
	}
	return "Actions so far, oldest first:\n" + strings.Join(lines, "\n")
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

var windowRE = regexp.MustCompile(`(?i)maximum context length is (\d+)|context (?:window|length) (?:is|of) (\d+)|limit of (\d+) tokens|> (\d+) maximum`)

// contextWindow reads the window size a context-length rejection names, or 0.
func contextWindow(err error) int {
	m := windowRE.FindStringSubmatch(err.Error())
	for _, g := range m[min(1, len(m)):] {
		if n, convErr := strconv.Atoi(g); convErr == nil && n > 0 {
			return n
		}
	}
	return 0
}
