// Package tools is what agents can do: each tool is a Spec — its name, its model-facing description,
// the JSON schema of its arguments, their Go type, whether it has side effects — and, beside it, the
// handler that runs it. Arguments are validated against the schema and decoded into their type once
// (Decode, in the workflow), and the handler receives the typed value. Sandbox tools reach sandboxd
// over gRPC as the session's owner; the browser and web tools run in agentd.
package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

// Names of the tools.
const (
	FileRead     = "file_read"
	FileWrite    = "file_write"
	FileEdit     = "file_edit"
	FileInsert   = "file_insert"
	FileSearch   = "file_search"
	FileList     = "file_list"
	SandboxShell = "sandbox_shell"
	PythonRun    = "python_run"
	ProcessStart = "process_start"
	ProcessList  = "process_list"
	ProcessLogs  = "process_logs"
	ProcessStop  = "process_stop"
	PreviewURL   = "preview_url"
	PreviewCheck = "preview_check"
	WebSearch    = "web_search"
	FetchURL     = "fetch_url"
	PlanAppend   = "plan_append"
	PlanUpdate   = "plan_update"
	PlanFinish   = "plan_finish"
	SendMessage  = "send_message"
	AskHuman     = "ask_human"
	ReplyToHuman = "reply_to_human"
	End          = "end"
)

// Spec describes a tool.
type Spec struct {
	Name        string
	Description string
	Schema      string
	// SideEffects marks calls that must never run twice: after a takeover, a call that started but has
	// no recorded result is reported to the model instead of being repeated.
	SideEffects bool
	// Control tools steer the workflow (plan, messaging, questions) and are handled by it; the others
	// are run by the Executor.
	Control bool
	// Watch marks tools that may change the workspace beyond what they report themselves (commands,
	// processes): the workspace's change journal is read around them so every changed path is announced.
	Watch bool

	compiled *jsonschema.Schema
	newArgs  func() any
	run      func(ctx context.Context, x *Executor, c *Call, args any) (Result, error)
}

// define builds a spec whose arguments decode into A and whose handler receives them typed. A nil
// run defines a control tool's arguments only.
func define[A any](s Spec, run func(ctx context.Context, x *Executor, c *Call, a *A) (Result, error)) *Spec {
	s.newArgs = func() any { return new(A) }
	if run != nil {
		s.run = func(ctx context.Context, x *Executor, c *Call, args any) (Result, error) {
			a, ok := args.(*A)
			if !ok {
				return fail("%s: arguments of type %T", s.Name, args), nil
			}
			return run(ctx, x, c, a)
		}
	}
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(s.Schema))
	if err != nil {
		panic(fmt.Sprintf("tools: schema of %s: %v", s.Name, err)) // a programming error, caught by any test
	}
	if err := c.AddResource(s.Name+".json", doc); err != nil {
		panic(err)
	}
	s.compiled = c.MustCompile(s.Name + ".json")
	return &s
}

// all lists every tool, in the order tool lists show them.
var all = func() []*Spec {
	var out []*Spec
	for _, group := range [][]*Spec{fileSpecs, commandSpecs, processSpecs, browserSpecs, webSpecs, controlSpecs} {
		out = append(out, group...)
	}
	return out
}()

var byName = func() map[string]*Spec {
	m := map[string]*Spec{}
	for _, s := range all {
		if _, dup := m[s.Name]; dup {
			panic("tools: " + s.Name + " defined twice")
		}
		m[s.Name] = s
	}
	return m
}()

// Lookup returns a tool's spec.
func Lookup(name string) (*Spec, bool) {
	s, ok := byName[name]
	return s, ok
}

// Known reports whether a tool exists.
func Known(name string) bool {
	_, ok := byName[name]
	return ok
}

// Names lists every tool.
func Names() []string {
	out := make([]string, 0, len(all))
	for _, s := range all {
		out = append(out, s.Name)
	}
	return out
}

// Decode checks raw arguments against the tool's schema and decodes them into the tool's argument
// type: the value a Call carries to the handler. Its errors are what the model is told.
func (s *Spec) Decode(raw string) (any, error) {
	v := s.newArgs()
	if err := s.Parse(raw, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Parse checks raw arguments against the schema and decodes them into v (nil: only checks).
func (s *Spec) Parse(raw string, v any) error {
	if strings.TrimSpace(raw) == "" {
		raw = "{}"
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		return fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	if err := s.compiled.Validate(inst); err != nil {
		return fmt.Errorf("arguments do not match the schema of %s: %w", s.Name, err)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(raw), v); err != nil {
			return fmt.Errorf("arguments: %w", err)
		}
	}
	return nil
}

// ForLLM returns the model-facing descriptions of the named tools.
func ForLLM(names []string) []llm.Tool {
	out := make([]llm.Tool, 0, len(names))
	for _, n := range names {
		if s, ok := byName[n]; ok {
			out = append(out, llm.Tool{Name: s.Name, Description: s.Description, Parameters: json.RawMessage(s.Schema)})
		}
	}
	return out
}
