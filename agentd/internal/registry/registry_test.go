package registry_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
)

func TestDefaultTeam(t *testing.T) {
	r, err := registry.Load("", tools.Known)
	require.NoError(t, err)
	var names []string
	for _, a := range r.All() {
		names = append(names, a.Name)
		require.True(t, strings.HasPrefix(r.SystemPrompt(a), "You are "+strings.ToUpper(a.Name[:1])+a.Name[1:]), a.Name)
		require.NotEmpty(t, a.Title, a.Name)
	}
	require.Equal(t, []string{"mike", "emma", "bob", "alex", "david", "iris"}, names)
	for _, a := range r.All() {
		// Alex is the only one who writes code and runs commands.
		require.Equal(t, a.Name == "alex", a.Allows(tools.SandboxShell), a.Name)
		require.Equal(t, a.Name == "alex", a.Allows(tools.FileWrite) && a.WritePrefix == "", a.Name)
	}
	mike, _ := r.Get("Mike")
	require.True(t, mike.Allows(tools.PlanAppend))
	require.True(t, mike.Allows(tools.FileRead), "the lead reads what members produced")
	require.False(t, mike.Allows(tools.FileWrite))
}

// team lists every role with the tools of the full tool set, or without the ones named in without
// (tools whose engine is unavailable are taken out of a role's list at start).
func team(t *testing.T, without ...string) *registry.Registry {
	t.Helper()
	lists := map[string]string{
		"mike":  "plan_append, plan_update, plan_finish, send_message, ask_human, reply_to_human, end, file_read, file_list, file_search",
		"emma":  "file_write, file_read, file_edit, file_insert, file_search, file_list, web_search, fetch_url, send_message, end",
		"bob":   "file_write, file_read, file_edit, file_insert, file_search, file_list, send_message, end",
		"alex":  "file_read, file_write, file_edit, file_insert, file_search, file_list, sandbox_shell, process_start, process_list, process_logs, process_stop, preview_url, preview_check, web_search, fetch_url, send_message, end",
		"david": "file_read, file_write, file_edit, file_insert, file_search, file_list, python_run, send_message, end",
		"iris":  "web_search, fetch_url, file_write, file_read, file_list, send_message, end",
	}
	var b strings.Builder
	b.WriteString("agents:\n")
	for _, name := range []string{"mike", "emma", "bob", "alex", "david", "iris"} {
		var kept []string
		for _, tool := range strings.Split(lists[name], ", ") {
			if !slices.Contains(without, tool) {
				kept = append(kept, tool)
			}
		}
		prefix := ""
		if name != "mike" && name != "alex" {
			prefix = ", write_prefix: docs/"
		}
		fmt.Fprintf(&b, "  - {name: %s, title: T, description: D, tools: [%s]%s}\n", name, strings.Join(kept, ", "), prefix)
	}
	p := filepath.Join(t.TempDir(), "agents.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
	r, err := registry.Load(p, nil)
	require.NoError(t, err)
	return r
}

func prompt(t *testing.T, r *registry.Registry, name string) string {
	t.Helper()
	a, ok := r.Get(name)
	require.True(t, ok)
	return r.SystemPrompt(a)
}

// The prompts are written for the team's tool set and read well whatever tools a role lost: each
// is rendered for the tools the role actually has.
func TestPromptsFollowTheTools(t *testing.T) {
	full := team(t)
	bare := team(t, "preview_check", "web_search", "fetch_url", "python_run", "file_search")

	mike := prompt(t, full, "mike")
	for _, want := range []string{"**Emma** (`emma`)", "**Bob** (`bob`)", "**Alex** (`alex`)", "**David** (`david`)", "**Iris** (`iris`)",
		"only source of information", "straight to Alex", "docs/prd.md", "Always reply before you end", "every turn must call a tool",
		"`file_read`", "`file_search`", "Iris searches the web", "David runs Python", "preview_check"} {
		require.Contains(t, mike, want)
	}
	bareMike := prompt(t, bare, "mike")
	require.Contains(t, bareMike, "Iris has no web search at the moment")
	require.Contains(t, bareMike, "David cannot run code at the moment")
	require.NotContains(t, bareMike, "preview_check")

	alex := prompt(t, full, "alex")
	for _, want := range []string{"0.0.0.0", "allowedHosts: true", "Never restart a server that is running", "Read before you edit",
		"`file_edit {path, old_str, new_str, replace_all?}`", "`preview_check {port, path?, wait_ms?}`", "`process_list`",
		"process_logs {name, tail?, since?}", "Report to Mike"} {
		require.Contains(t, alex, want)
	}
	bareAlex := prompt(t, bare, "alex")
	require.NotContains(t, bareAlex, "preview_check")
	require.Contains(t, bareAlex, "curl -sS")

	require.Contains(t, prompt(t, full, "iris"), "`web_search {query, count?}`")
	require.Contains(t, prompt(t, full, "iris"), "Sources")
	require.Contains(t, prompt(t, bare, "iris"), "Web search is not available")
	require.NotContains(t, prompt(t, bare, "iris"), "fetch_url")
	require.Contains(t, prompt(t, full, "david"), "`python_run {code, timeout?}`")
	require.Contains(t, prompt(t, bare, "david"), "cannot run code")
	require.Contains(t, prompt(t, full, "emma"), "`web_search {query, count?}`")
	require.NotContains(t, prompt(t, bare, "emma"), "web_search")
	require.Contains(t, prompt(t, full, "bob"), "allowedHosts")

	for _, r := range []*registry.Registry{full, bare} {
		for _, a := range r.All() {
			p := r.SystemPrompt(a)
			require.NotContains(t, p, "{{", a.Name)
			require.NotContains(t, p, "<no value>", a.Name)
			require.NotContains(t, p, "\n\n\n", "%s's prompt has no gaps left by missing tools", a.Name)
		}
	}
	words := func(s string) int { return len(strings.Fields(s)) }
	t.Logf("words: mike %d, alex %d, emma %d, bob %d, david %d, iris %d", words(mike), words(alex),
		words(prompt(t, full, "emma")), words(prompt(t, full, "bob")), words(prompt(t, full, "david")), words(prompt(t, full, "iris")))
	require.Greater(t, words(mike), 900)
	require.Greater(t, words(alex), 1200)
}

func TestPromptOverride(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agents.yaml")
	require.NoError(t, os.WriteFile(p, []byte("agents:\n  - {name: mike, title: Lead, tools: [end], system_prompt: \"You are {{.Display}}; tools: {{.Tools}}.\"}\n"), 0o600))
	r, err := registry.Load(p, tools.Known)
	require.NoError(t, err)
	require.Equal(t, "You are Mike; tools: end.", prompt(t, r, "mike"))
	require.NoError(t, os.WriteFile(p, []byte("agents:\n  - {name: mike, tools: [end], system_prompt: \"{{.Nope}}\"}\n"), 0o600))
	_, err = registry.Load(p, tools.Known)
	require.ErrorIs(t, err, registry.ErrInvalid, "a prompt that cannot render is refused at start")
}

func TestLoadErrors(t *testing.T) {
	tests := map[string]string{
		"unknown tool":  "agents:\n  - {name: mike, tools: [teleport]}\n",
		"no lead":       "agents:\n  - {name: alex, tools: [file_write]}\n",
		"duplicate":     "agents:\n  - {name: mike}\n  - {name: MIKE}\n",
		"unknown field": "agents:\n  - {name: mike, colour: blue}\n",
		"not yaml":      "agents: [",
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agents.yaml")
			require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
			_, err := registry.Load(p, tools.Known)
			require.ErrorIs(t, err, registry.ErrInvalid)
		})
	}
	_, err := registry.Load("/nonexistent/agents.yaml", tools.Known)
	require.Error(t, err)
}
