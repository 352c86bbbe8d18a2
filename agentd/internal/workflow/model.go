package workflow

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
)

// A model turn as the workflow runs it: retried when the provider fails, continued when the output
// limit cuts a text answer, streamed to the UI (text and tool-call arguments) and accounted — tokens,
// cache, cost — whether it succeeds or not.

// continuePrompt asks a model to go on with an answer the output limit cut.
const continuePrompt = "Your previous answer was cut off by the output limit. Continue it exactly where it stopped: " +
	"do not repeat what you already wrote, do not start over, and do not comment on the interruption."

// callMessageID is the message id of the events showing the call at position pos of the turn
// msgID. It is derived rather than drawn so that a retried attempt streams into the same place.
func callMessageID(msgID string, pos int) string {
	return uuid.NewSHA1(uuid.MustParse(msgID), []byte("tool_call/"+strconv.Itoa(pos))).String()
}

// turnStream carries one turn's pieces to the UI and can take back what a failed attempt showed.
type turnStream struct {
	ctx   context.Context
	h     Host
	run   Run
	agent string
	msgID string
	shown string         // text of earlier continuation segments, already on screen
	calls map[int]string // position → tool name of the current attempt's calls
	// What the current attempt put on screen, to take back if it fails.
	textSent  bool
	callsSent map[int]bool
	emitErr   error
}

func (ts *turnStream) stream() llm.Stream {
	return llm.Stream{
		Text: func(s string) {
			ts.textSent = true
			ts.h.Token(ts.ctx, ts.msgID, ts.agent, s)
		},
		ToolCall: func(d llm.ToolCallDelta) {
			if d.Name != "" {
				ts.calls[d.Index] = d.Name
			}
			if d.Arguments != "" {
				ts.callsSent[d.Index] = true
				ts.h.ToolCallDelta(ts.ctx, callMessageID(ts.msgID, d.Index), ts.agent, ts.calls[d.Index], d.Arguments)
			}
		},
	}
}

// retried takes back what the failed attempt streamed — its text is replaced by what earlier
// segments showed, its calls' arguments by nothing — and says that the turn is being retried.
func (ts *turnStream) retried(r llm.Retry) {
	emit := func(ev *agentdv1.Event) {
		if ts.emitErr == nil {
			ts.emitErr = ts.h.Emit(ts.ctx, ev)
		}
	}
	sc := ts.run.scope()
	if ts.textSent {
		ev := sc.New(events.TypeToken, events.SenderOf(ts.agent), ts.agent, ts.shown)
		ev.MessageId, ev.Final, ev.Data = ts.msgID, true, events.Data(map[string]any{"reset": true})
		emit(ev)
	}
	for _, pos := range slices.Sorted(maps.Keys(ts.callsSent)) {
		ev := sc.Tool(events.TypeToolCallDelta, ts.agent, ts.calls[pos], "", map[string]any{"reset": true})
		ev.MessageId, ev.Final = callMessageID(ts.msgID, pos), true
		emit(ev)
	}
	ts.textSent = false
	clear(ts.calls)
	clear(ts.callsSent)
	text := fmt.Sprintf("%s's model call failed (%s); retrying in %s (attempt %d of %d).",
		events.Display(ts.agent), r.Err.Error(), roundDelay(r.Delay), r.Attempt+1, r.MaxAttempts)
	emit(sc.Status(ts.agent, text, map[string]any{"retry": map[string]any{
		"attempt": float64(r.Attempt + 1), "max_attempts": float64(r.MaxAttempts), "delay_ms": float64(r.Delay.Milliseconds()),
		"error_type": r.Err.Type, "http_status": float64(r.Err.Status),
	}}))
}

// complete runs one model turn for agent over msgs, continuing a text answer the output limit cut
// (at most MaxContinuations times). The response's Usage covers every call made, failed ones too;
// segments is how many successful calls that took.
func (e *Engine) complete(ctx context.Context, h Host, run Run, agent registry.Agent, model, msgID, system string, tls []llm.Tool, msgs []llm.Message, requireTool bool) (resp llm.Response, segments int, err error) {
	ts := &turnStream{ctx: ctx, h: h, run: run, agent: agent.Name, msgID: msgID, calls: map[int]string{}, callsSent: map[int]bool{}}
	req := llm.Request{Agent: agent.Name, Model: model, System: system, Messages: msgs,
		Tools: tls, MaxTokens: e.MaxOutputTokens, RequireTool: requireTool}
	var spent llm.Usage
	for {
		resp, err = e.Retry.Complete(ctx, e.Provider, req, ts.stream(), ts.retried)
		spent = spent.Add(resp.Usage)
		if err == nil && ts.emitErr != nil {
			err = ts.emitErr
		}
		if err != nil {
			return llm.Response{Usage: spent, Model: resp.Model}, segments, err
		}
		segments++
		resp.Content = ts.shown + resp.Content
		cut := resp.Stop == llm.StopLength && len(resp.ToolCalls) == 0 && strings.TrimSpace(resp.Content) != ""
		if !cut || segments > e.MaxContinuations {
			resp.Usage = spent
			return resp, segments, nil
		}
		// bolt.diy-style auto-continue: the model sees its answer so far and is asked to go on; the
		// UI keeps appending to the same message.
		ts.shown = resp.Content
		req.Messages = append(slices.Clip(msgs),
			llm.Message{Role: llm.RoleAssistant, Content: resp.Content},
			llm.Message{Role: llm.RoleUser, Content: continuePrompt})
	}
}

// account adds a turn's usage to the run: its token budget, the metrics, and (through the next
// checkpoint) the run's and session's totals. It warns once per run about a model without a price.
func (e *Engine) account(ctx context.Context, h Host, run Run, st *State, agent, model string, u llm.Usage) (Usage, error) {
	if model == "" {
		model = "(provider default)"
	}
	price, known := e.Pricing.For(model)
	cost := price.Cost(u)
	st.Tokens += u.Total()
	st.UsageEstimated = st.UsageEstimated || u.Estimated
	recordUsage(ctx, model, u, cost)
	if !known && u.Total() > 0 && !e.Provider.Offline() && !slices.Contains(st.Unpriced, model) {
		st.Unpriced = append(st.Unpriced, model)
		text := fmt.Sprintf("No price is known for model %q, so its usage is counted at $0 (set AGENTD_LLM_PRICES to price it).", model)
		if err := h.Emit(ctx, run.scope().Status(agent, text, map[string]any{"unpriced_model": model})); err != nil {
			return Usage{}, err
		}
	}
	return Usage{Usage: u, CostUSD: cost}, nil
}

// markCut handles a turn the output limit ended inside a tool call: the call whose arguments are not
// complete JSON must not run, and the model is told exactly what was cut and how to go on.
func markCut(agent registry.Agent, resp *llm.Response) {
	for i := range resp.ToolCalls {
		c := &resp.ToolCalls[i]
		if jsonValid(c.Arguments) {
			continue
		}
		cut := llm.InspectCut(c.Arguments)
		c.Cut = cutObservation(agent, *c, cut, resp.MaxTokens)
		c.Arguments = cut.Salvage()
	}
}

func cutObservation(agent registry.Agent, c llm.ToolCall, cut llm.CutArguments, maxTokens int) string {
	var b strings.Builder
	limit := "the output limit"
	if maxTokens > 0 {
		limit = fmt.Sprintf("the output limit of %d tokens", maxTokens)
	}
	fmt.Fprintf(&b, "error: your answer reached %s while you were writing the arguments of this %s call, so they were cut off mid-JSON and the call was NOT executed. ",
		limit, c.Name)
	fmt.Fprintf(&b, "%d bytes of arguments arrived", cut.Bytes)
	if cut.Field != "" {
		fmt.Fprintf(&b, "; the %q argument was cut after %d bytes", cut.Field, cut.FieldBytes)
	}
	if len(cut.Complete) > 0 {
		fmt.Fprintf(&b, " (complete arguments: %s)", cut.Salvage())
	}
	b.WriteString(". Do not repeat the same call: it would be cut at the same place. Split the work into smaller calls")
	switch {
	case agent.Allows("file_edit") || agent.Allows("file_insert"):
		b.WriteString(" — write a shorter first version of the file, then extend it with file_edit/file_insert calls, or split it into several smaller files")
	case agent.Allows(tools.FileWrite):
		b.WriteString(" — split the content into several smaller files")
	}
	if maxTokens > 0 {
		fmt.Fprintf(&b, ". Keep each call well below the limit (at most about %d KB of arguments)", maxTokens*3/2/1024)
	}
	b.WriteString(".")
	return b.String()
}

// refusal describes a turn the model or its provider declined.
func refusal(agent string, resp llm.Response) string {
	who := events.Display(agent)
	var text string
	if resp.Stop == llm.StopContentFilter {
		text = fmt.Sprintf("The provider's content filter stopped %s's answer", who)
	} else {
		text = fmt.Sprintf("%s's model declined to answer", who)
	}
	if r := strings.TrimSpace(resp.Refusal); r != "" {
		text += ": " + truncate(r, 500)
	}
	return text + "."
}

// roundDelay shows a wait the way a person reads it: "250ms", "2s", "1m30s".
func roundDelay(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// system is the agent's system prompt, rendered for its tools and team.
func (e *Engine) system(a registry.Agent) string { return e.Registry.SystemPrompt(a) }
