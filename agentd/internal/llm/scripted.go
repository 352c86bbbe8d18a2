package llm

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

//go:embed scripts/build_web_app.yaml
var defaultScript []byte

// Script is the scripted provider's list of turns per agent. Each model call plays the next turn
// whose condition (When) holds for what the agent has received so far — tool results, the tools it
// is offered — so a script can branch: an app already in the workspace is edited, not rebuilt. A
// turn without a condition is always next, and a new message from the user (not a tool result)
// starts the list again. The choice is a function of the conversation alone, so a replay after a
// takeover answers exactly as the first time.
type Script struct {
	Agents map[string][]Turn `yaml:"agents"`
}

// Turn is one scripted answer. Text and string arguments may hold {{request}}, the user's latest
// request, and {{request_html}}, the same escaped for HTML.
type Turn struct {
	When      *Condition       `yaml:"when"`
	Text      string           `yaml:"text"`
	DelayMS   int              `yaml:"delay_ms"`
	ToolCalls []ScriptToolCall `yaml:"tool_calls"`
}

// Condition selects a turn by what the agent has seen; every field set must hold.
type Condition struct {
	// ResultContains holds when the latest result of the tool contains the text; ResultLacks when
	// it does not, or the tool has no result yet.
	ResultContains *ToolText `yaml:"result_contains"`
	ResultLacks    *ToolText `yaml:"result_lacks"`
	// HasTool and LacksTool test the tools the agent is offered (an unavailable tool is not).
	HasTool   string `yaml:"has_tool"`
	LacksTool string `yaml:"lacks_tool"`
}

// ToolText names a tool and a text.
type ToolText struct {
	Tool string `yaml:"tool"`
	Text string `yaml:"text"`
}

func (c *Condition) holds(msgs []Message, tools []Tool) bool {
	if c == nil {
		return true
	}
	if c.ResultContains != nil && !strings.Contains(latestResult(msgs, c.ResultContains.Tool), c.ResultContains.Text) {
		return false
	}
	if c.ResultLacks != nil && strings.Contains(latestResult(msgs, c.ResultLacks.Tool), c.ResultLacks.Text) {
		return false
	}
	if c.HasTool != "" && !hasTool(tools, c.HasTool) {
		return false
	}
	if c.LacksTool != "" && hasTool(tools, c.LacksTool) {
		return false
	}
	return true
}

// latestResult is the content of the latest result of tool in msgs, "" when there is none.
func latestResult(msgs []Message, tool string) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleTool && msgs[i].ToolName == tool {
			return msgs[i].Content
		}
	}
	return ""
}

// ScriptToolCall is a scripted tool call; Args is any YAML value, sent as JSON.
type ScriptToolCall struct {
	Name string `yaml:"name"`
	Args any    `yaml:"args"`
}

// scriptedArgPiece is the size of the pieces scripted tool-call arguments stream in.
const scriptedArgPiece = 64

// Scripted is the offline provider: it needs no key and no network, and drives the team through the
// build its script describes with real tool calls.
type Scripted struct {
	script Script
}

// LoadScript reads a script; an empty path means the embedded default. vars replace "{{name}}" in
// the script's text before it is parsed, so they may stand for numbers as well as strings.
func LoadScript(path string, vars map[string]string) (Script, error) {
	raw := defaultScript
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Script{}, fmt.Errorf("llm: read script: %w", err)
		}
		raw = b
	}
	text := string(raw)
	for k, v := range vars {
		text = strings.ReplaceAll(text, "{{"+k+"}}", v)
	}
	var s Script
	if err := yaml.Unmarshal([]byte(text), &s); err != nil {
		return Script{}, fmt.Errorf("llm: parse script %q: %w", path, err)
	}
	if len(s.Agents) == 0 {
		return Script{}, fmt.Errorf("llm: script %q has no agents", path)
	}
	return s, nil
}

// NewScripted returns the offline provider playing s.
func NewScripted(s Script) *Scripted {
	return &Scripted{script: s}
}

// Name implements Provider.
func (*Scripted) Name() string { return "scripted" }

// Offline implements Provider.
func (*Scripted) Offline() bool { return true }

// pick replays the conversation's earlier turns to find where the script stands, then returns the
// turn for this call, or false when the script has none left.
func (p *Scripted) pick(req Request) (Turn, bool) {
	turns := p.script.Agents[req.Agent]
	var asst []int
	for i, m := range req.Messages {
		if m.Role == RoleAssistant {
			asst = append(asst, i)
		}
	}
	pos := 0
	for k := 0; ; k++ {
		end, start := len(req.Messages), 0
		if k < len(asst) {
			end = asst[k]
		}
		if k > 0 {
			start = asst[k-1] + 1
		}
		// A message from the user after the agent's last turn is a new request: the script
		// starts over.
		for _, m := range req.Messages[start:end] {
			if m.Role == RoleUser && k > 0 {
				pos = 0
			}
		}
		idx := -1
		for i := pos; i < len(turns); i++ {
			if turns[i].When.holds(req.Messages[:end], req.Tools) {
				idx = i
				break
			}
		}
		if k == len(asst) {
			if idx < 0 {
				return Turn{}, false
			}
			return turns[idx], true
		}
		pos = len(turns)
		if idx >= 0 {
			pos = idx + 1
		}
	}
}

// Complete implements Provider.
func (p *Scripted) Complete(ctx context.Context, req Request, s Stream) (Response, error) {
	n := 0
	for _, m := range req.Messages {
		if m.Role == RoleAssistant {
			n++
		}
	}
	turn, ok := p.pick(req)
	if !ok {
		turn = Turn{Text: "I have nothing more to add."}
		if hasTool(req.Tools, "end") {
			turn.ToolCalls = []ScriptToolCall{{Name: "end", Args: map[string]any{"summary": "Done."}}}
		}
	}
	vars := requestVars(req.Messages)
	turn.Text = vars.Replace(turn.Text)
	if turn.DelayMS > 0 {
		t := time.NewTimer(time.Duration(turn.DelayMS) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return Response{}, ctx.Err()
		case <-t.C:
		}
	}
	text := turn.Text
	// Stream in word-sized pieces, like a model would.
	for _, w := range strings.SplitAfter(text, " ") {
		if err := ctx.Err(); err != nil {
			return Response{}, err
		}
		s.text(w)
	}
	resp := Response{Content: text, Model: "scripted", Stop: StopEnd, StopReason: "end"}
	for i, tc := range turn.ToolCalls {
		args, err := json.Marshal(substitute(jsonable(tc.Args), vars))
		if err != nil {
			return Response{}, fmt.Errorf("llm: scripted args of %s: %w", tc.Name, err)
		}
		if tc.Args == nil {
			args = []byte("{}")
		}
		call := ToolCall{ID: fmt.Sprintf("call_%s_%d_%d", req.Agent, n, i), Name: tc.Name, Arguments: string(args)}
		// Arguments stream in pieces, as a model's do, so the offline demo shows files being written.
		s.toolCall(ToolCallDelta{Index: i, ID: call.ID, Name: call.Name})
		for rest := call.Arguments; rest != ""; {
			n := min(len(rest), scriptedArgPiece)
			for n < len(rest) && !utf8.RuneStart(rest[n]) {
				n++ // events carry valid UTF-8: never split a character
			}
			piece := rest[:n]
			rest = rest[len(piece):]
			s.toolCall(ToolCallDelta{Index: i, Arguments: piece})
		}
		resp.ToolCalls = append(resp.ToolCalls, call)
		resp.Stop, resp.StopReason = StopToolUse, "tool_use"
	}
	// There is no model, so no tokens: these counts only give the usage report its shape.
	resp.Usage = Usage{InputTokens: int64(len(req.Messages) * 50), OutputTokens: int64(len(text)/4 + 10), Estimated: true}
	return resp, nil
}

func hasTool(tools []Tool, name string) bool {
	for _, t := range tools {
		if t.Name == name {
			return true
		}
	}
	return false
}

// requestMarkers precede the user's own words in a conversation's opening message: the runtime's
// history preamble, and the delegation of the default script.
var requestMarkers = []string{"New request from the user:", "The user asked:"}

// requestVars are the run-time variables of a turn: the user's latest request, as the last message
// from the user (not a tool result) states it, after any marker.
func requestVars(msgs []Message) *strings.Replacer {
	text := ""
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleUser {
			text = msgs[i].Content
			break
		}
	}
	for _, m := range requestMarkers {
		if i := strings.LastIndex(text, m); i >= 0 {
			text = text[i+len(m):]
		}
	}
	// The request is the paragraph after the marker; what follows a blank line (a project brief the
	// runtime appends) is not the user's.
	text = strings.TrimLeft(text, " \t\r\n")
	if i := strings.Index(text, "\n\n"); i >= 0 {
		text = text[:i]
	}
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > 200 {
		text = string(r[:200]) + "…"
	}
	return strings.NewReplacer("{{request}}", text, "{{request_html}}", html.EscapeString(text))
}

// substitute applies the variables to every string of an argument tree.
func substitute(v any, r *strings.Replacer) any {
	switch x := v.(type) {
	case string:
		return r.Replace(x)
	case map[string]any:
		for k, e := range x {
			x[k] = substitute(e, r)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = substitute(e, r)
		}
		return x
	}
	return v
}

// jsonable turns YAML's map[string]any trees into values encoding/json accepts.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}
