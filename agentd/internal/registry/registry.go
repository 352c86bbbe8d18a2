// Package registry loads the agent team from YAML: the embedded default team, or the file named by
// AGENTD_AGENTS_FILE.
package registry

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed agents.yaml
var defaultAgents []byte

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
	Name         string   `yaml:"name"`
	Title        string   `yaml:"title"`
	Description  string   `yaml:"description"`
	SystemPrompt string   `yaml:"system_prompt"`
	Model        string   `yaml:"model"`
	Tools        []string `yaml:"tools"`
	// WritePrefix confines file_write to a directory of the workspace (doc-writing roles use "docs/").
	WritePrefix string `yaml:"write_prefix"`
	Limits      Limits `yaml:"limits"`
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
		r.agents = append(r.agents, a)
		r.byName[a.Name] = a
	}
	if _, ok := r.byName[LeadName]; !ok {
		return nil, fmt.Errorf("registry: %w: the team needs a lead named %q", ErrInvalid, LeadName)
	}
	return r, nil
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

// SystemPrompt is the agent's system prompt.
func (r *Registry) SystemPrompt(a Agent) string {
	if a.Name != LeadName {
		return a.SystemPrompt
	}
	return a.SystemPrompt + "\nTeam members: " + strings.Join(r.Members(), ", ") + "."
}
