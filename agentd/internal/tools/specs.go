// Package tools defines the tools agents call — their JSON-schema arguments and whether they have side
// effects — and executes the sandbox tools against sandboxd over gRPC.
package tools

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

// Names of the tools.
const (
	FileWrite    = "file_write"
	FileRead     = "file_read"
	FileList     = "file_list"
	SandboxShell = "sandbox_shell"
	ProcessStart = "process_start"
	ProcessLogs  = "process_logs"
	ProcessStop  = "process_stop"
	PreviewURL   = "preview_url"
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
	// run in the sandbox.
	Control  bool
	compiled *jsonschema.Schema
}

var specs = []*Spec{
	{Name: FileWrite, SideEffects: true, Description: "Write a text file in the workspace (creating directories).",
		Schema: `{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096},"content":{"type":"string"}},"required":["path","content"],"additionalProperties":false}`},
	{Name: FileRead, Description: "Read a text file of the workspace.",
		Schema: `{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096}},"required":["path"],"additionalProperties":false}`},
	{Name: FileList, Description: "List the workspace's files as a tree.",
		Schema: `{"type":"object","properties":{"path":{"type":"string","maxLength":4096},"depth":{"type":"integer","minimum":1,"maximum":10}},"additionalProperties":false}`},
	{Name: SandboxShell, SideEffects: true, Description: "Run a shell command in the workspace and return its stdout, stderr and exit code. Do not start servers with it; use process_start.",
		Schema: `{"type":"object","properties":{"command":{"type":"string","minLength":1,"maxLength":65536},"cwd":{"type":"string","maxLength":4096},"env":{"type":"object","additionalProperties":{"type":"string"}},"timeout":{"type":"number","exclusiveMinimum":0,"maximum":3600}},"required":["command"],"additionalProperties":false}`},
	{Name: ProcessStart, SideEffects: true, Description: "Start a long-running background process (e.g. a dev server) under a name.",
		Schema: `{"type":"object","properties":{"name":{"type":"string","pattern":"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},"command":{"type":"string","minLength":1,"maxLength":65536},"cwd":{"type":"string","maxLength":4096},"env":{"type":"object","additionalProperties":{"type":"string"}}},"required":["name","command"],"additionalProperties":false}`},
	{Name: ProcessLogs, Description: "Read the output of a background process.",
		Schema: `{"type":"object","properties":{"name":{"type":"string","pattern":"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}},"required":["name"],"additionalProperties":false}`},
	{Name: ProcessStop, SideEffects: true, Description: "Stop a background process.",
		Schema: `{"type":"object","properties":{"name":{"type":"string","pattern":"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}},"required":["name"],"additionalProperties":false}`},
	{Name: PreviewURL, Description: "Get the live preview URL of a port a server listens on in the sandbox.",
		Schema: `{"type":"object","properties":{"port":{"type":"integer","minimum":1,"maximum":65535}},"additionalProperties":false}`},
	{Name: PlanAppend, Control: true, Description: "Append tasks to the plan.",
		Schema: `{"type":"object","properties":{"tasks":{"type":"array","minItems":1,"maxItems":20,"items":{"type":"object","properties":{"id":{"type":"string","maxLength":64},"title":{"type":"string","minLength":1,"maxLength":500},"assignee":{"type":"string"},"depends_on":{"type":"array","items":{"type":"string"}}},"required":["title","assignee"],"additionalProperties":false}}},"required":["tasks"],"additionalProperties":false}`},
	{Name: PlanUpdate, Control: true, Description: "Update a task's status (todo, in_progress, done, failed) or note.",
		Schema: `{"type":"object","properties":{"task_id":{"type":"string","minLength":1},"status":{"enum":["todo","in_progress","done","failed"]},"note":{"type":"string","maxLength":2000}},"required":["task_id"],"additionalProperties":false}`},
	{Name: PlanFinish, Control: true, Description: "Mark the plan finished.",
		Schema: `{"type":"object","properties":{"summary":{"type":"string","maxLength":4000}},"additionalProperties":false}`},
	{Name: SendMessage, Control: true, Description: "Send a message to a team member (the lead delegates a task and waits for its report) or, from a member, report back to mike.",
		Schema: `{"type":"object","properties":{"to":{"type":"string","minLength":1},"content":{"type":"string","minLength":1,"maxLength":20000}},"required":["to","content"],"additionalProperties":false}`},
	{Name: AskHuman, Control: true, Description: "Ask the user a question and wait for the answer.",
		Schema: `{"type":"object","properties":{"question":{"type":"string","minLength":1,"maxLength":4000}},"required":["question"],"additionalProperties":false}`},
	{Name: ReplyToHuman, Control: true, Description: "Send a message to the user.",
		Schema: `{"type":"object","properties":{"content":{"type":"string","minLength":1,"maxLength":20000}},"required":["content"],"additionalProperties":false}`},
	{Name: End, Control: true, Description: "Finish your work (members return to the lead; the lead ends the run).",
		Schema: `{"type":"object","properties":{"summary":{"type":"string","maxLength":4000}},"additionalProperties":false}`},
}

var byName = func() map[string]*Spec {
	m := map[string]*Spec{}
	for _, s := range specs {
		c := jsonschema.NewCompiler()
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(s.Schema))
		if err != nil {
			panic(fmt.Sprintf("tools: schema of %s: %v", s.Name, err)) // a programming error, caught by any test
		}
		if err := c.AddResource(s.Name+".json", doc); err != nil {
			panic(err)
		}
		s.compiled = c.MustCompile(s.Name + ".json")
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

// Parse checks raw arguments against the tool's schema and decodes them into v.
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
