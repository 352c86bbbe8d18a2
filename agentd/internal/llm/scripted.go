package llm

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

//go:embed scripts/build_web_app.yaml
var defaultScript []byte

// Script is the scripted provider's list of turns per agent. An agent's Nth model call in a
// conversation gets its Nth turn, so a replay after a takeover answers exactly as the first time.
type Script struct {
	Agents map[string][]Turn `yaml:"agents"`
}

// Turn is one scripted answer.
type Turn struct {
	Text      string           `yaml:"text"`
	DelayMS   int              `yaml:"delay_ms"`
	ToolCalls []ScriptToolCall `yaml:"tool_calls"`
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

// Complete implements Provider.
func (p *Scripted) Complete(ctx context.Context, req Request, s Stream) (Response, error) {
	n := 0
	for _, m := range req.Messages {
		if m.Role == RoleAssistant {
			n++
		}
	}
	turns := p.script.Agents[req.Agent]
	var turn Turn
	if n < len(turns) {
		turn = turns[n]
	} else {
		turn = Turn{Text: "I have nothing more to add."}
		if hasTool(req.Tools, "end") {
			turn.ToolCalls = []ScriptToolCall{{Name: "end", Args: map[string]any{"summary": "Done."}}}
		}
	}
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
		args, err := json.Marshal(jsonable(tc.Args))
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
