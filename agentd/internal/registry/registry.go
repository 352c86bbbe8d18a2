// Package registry loads the agent team from YAML — the embedded default team, or the file named by
// AGENTD_AGENTS_FILE — with each role's system prompt, one readable file per role under prompts/
// (embedded). A prompt is a Go template rendered for the tools the agent actually has, so a role
// whose search engine or browser is unavailable reads well without them.
package registry

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

//go:embed agents.yaml
var defaultAgents []byte

//go:embed prompts/*.md
var prompts embed.FS

// LeadName is the agent that leads every run.
const LeadName = "mike"

// ErrInvalid is wrapped by every error about a malformed agents file.
var ErrInvalid = errors.New("invalid agents file")

// Limits bound a run. Zero values take the defaults of the file (or the service's configuration).
type Limits struct {
	MaxSteps     int   `yaml:"max_steps"`
	MaxToolCalls int   `yaml:"max_tool_calls"`
	MaxTokens    int64 `yaml:"max_tokens"`
}

// Agent is one member of the team.
type Agent struct {
	Name        string `yaml:"name"`
	Title       string `yaml:"title"`
	Description string `yaml:"description"`
	// SystemPrompt, when set, replaces the embedded prompts/<name>.md (same template language).
	SystemPrompt string   `yaml:"system_prompt"`
	Model        string   `yaml:"model"`
	Tools        []string `yaml:"tools"`
	// WritePrefix confines file_write to a directory of the workspace (doc-writing roles use "docs/").
	WritePrefix string `yaml:"write_prefix"`
	Limits      Limits `yaml:"limits"`

	prompt *template.Template
}

// Allows reports whether the agent may call tool.
func (a Agent) Allows(tool string) bool { return slices.Contains(a.Tools, tool) }

// Registry is the loaded team.
type Registry struct {
	agents []Agent
	byName map[string]Agent
}

type file struct {
	Agents []Agent `yaml:"agents"`
}

// Load reads the team from path, or the embedded default when path is empty. knownTools, when not
// nil, is checked against every agent's tool list.
func Load(path string, knownTools func(string) bool) (*Registry, error) {
	raw := defaultAgents
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		raw = b
	}
	var f file
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("registry: %s: %w: %w", path, ErrInvalid, err)
	}
	r := &Registry{byName: map[string]Agent{}}
	for _, a := range f.Agents {
		a.Name = strings.ToLower(strings.TrimSpace(a.Name))
		if a.Name == "" {
			return nil, fmt.Errorf("registry: %w: agent without a name", ErrInvalid)
		}
		if _, dup := r.byName[a.Name]; dup {
			return nil, fmt.Errorf("registry: %w: agent %q defined twice", ErrInvalid, a.Name)
		}
		for _, t := range a.Tools {
			if knownTools != nil && !knownTools(t) {
				return nil, fmt.Errorf("registry: %w: agent %q lists unknown tool %q", ErrInvalid, a.Name, t)
			}
		}
		if err := a.parsePrompt(); err != nil {
			return nil, fmt.Errorf("registry: %w: prompt of %q: %w", ErrInvalid, a.Name, err)
		}
		r.agents = append(r.agents, a)
		r.byName[a.Name] = a
	}
	if _, ok := r.byName[LeadName]; !ok {
		return nil, fmt.Errorf("registry: %w: the team needs a lead named %q", ErrInvalid, LeadName)
	}
	// A template that parses can still fail on its data (a misspelt field): render each once now.
	for _, a := range r.agents {
		if _, err := r.render(a); err != nil {
			return nil, fmt.Errorf("registry: %w: prompt of %q: %w", ErrInvalid, a.Name, err)
		}
	}
	return r, nil
}

// parsePrompt reads the agent's prompt template: its system_prompt, else prompts/<name>.md, else a
// plain line naming the role.
func (a *Agent) parsePrompt() error {
	text := a.SystemPrompt
	if text == "" {
		b, err := fs.ReadFile(prompts, "prompts/"+a.Name+".md")
		switch {
		case err == nil:
			text = string(b)
		case errors.Is(err, fs.ErrNotExist):
			text = "You are {{.Display}}, {{.Title}} of a software team. {{.Description}}"
		default:
			return err
		}
	}
	t, err := template.New(a.Name).Option("missingkey=error").Parse(text)
	if err != nil {
		return err
	}
	a.prompt = t
	return nil
}

// Get returns an agent by name.
func (r *Registry) Get(name string) (Agent, bool) {
	a, ok := r.byName[strings.ToLower(name)]
	return a, ok
}

// All returns the agents in file order.
func (r *Registry) All() []Agent { return slices.Clone(r.agents) }

// Members returns the names of every agent but the lead.
func (r *Registry) Members() []string {
	var out []string
	for _, a := range r.agents {
		if a.Name != LeadName {
			out = append(out, a.Name)
		}
	}
	return out
}

// SystemPrompt renders the agent's system prompt for the tools it has (a.Tools) and its team.
func (r *Registry) SystemPrompt(a Agent) string {
	out, err := r.render(a)
	if err != nil {
		// Load rendered every prompt once; only data it did not see can fail here.
		return fmt.Sprintf("You are %s, %s of a software team.", display(a.Name), a.Title)
	}
	return out
}

func (r *Registry) render(a Agent) (string, error) {
	if a.prompt == nil {
		if err := a.parsePrompt(); err != nil {
			return "", err
		}
	}
	var b strings.Builder
	if err := a.prompt.Execute(&b, promptData{agent: a, reg: r}); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// promptData is what a prompt template sees.
type promptData struct {
	agent Agent
	reg   *Registry
}

// Name is the agent's name ("alex"); Display the name people read ("Alex").
func (d promptData) Name() string    { return d.agent.Name }
func (d promptData) Display() string { return display(d.agent.Name) }

// Title and Description are the agent's, from the team file.
func (d promptData) Title() string       { return d.agent.Title }
func (d promptData) Description() string { return d.agent.Description }

// WritePrefix is the folder the agent's file writes are confined to ("" for none).
func (d promptData) WritePrefix() string { return d.agent.WritePrefix }

// Has reports whether the agent has every one of the tools.
func (d promptData) Has(tools ...string) bool {
	for _, t := range tools {
		if !d.agent.Allows(t) {
			return false
		}
	}
	return len(tools) > 0
}

// HasAny reports whether the agent has one of the tools.
func (d promptData) HasAny(tools ...string) bool {
	return slices.ContainsFunc(tools, d.agent.Allows)
}

// Tools lists the agent's tools.
func (d promptData) Tools() string { return strings.Join(d.agent.Tools, ", ") }

// Member describes another agent of the team for the prompt, by name.
func (d promptData) Member(name string) TeamMember {
	a, ok := d.reg.Get(name)
	if !ok {
		return TeamMember{}
	}
	return TeamMember{a: a}
}

// Team lists the other members (for the lead).
func (d promptData) Team() []TeamMember {
	var out []TeamMember
	for _, a := range d.reg.agents {
		if a.Name != d.agent.Name {
			out = append(out, TeamMember{a: a})
		}
	}
	return out
}

// TeamMember is a team member as a prompt describes it.
type TeamMember struct{ a Agent }

// On reports whether the member is on the team.
func (m TeamMember) On() bool { return m.a.Name != "" }

// Name, Display, Title and Description are the member's.
func (m TeamMember) Name() string        { return m.a.Name }
func (m TeamMember) Display() string     { return display(m.a.Name) }
func (m TeamMember) Title() string       { return m.a.Title }
func (m TeamMember) Description() string { return m.a.Description }

// Has reports whether the member has every one of the tools.
func (m TeamMember) Has(tools ...string) bool {
	for _, t := range tools {
		if !m.a.Allows(t) {
			return false
		}
	}
	return m.On() && len(tools) > 0
}

func display(name string) string {
	if name == "" {
		return ""
	}
	return strings.ToUpper(name[:1]) + name[1:]
}
