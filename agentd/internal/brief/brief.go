// Package brief describes a session's project to its agents: the workspace's files (dependency and
// build folders left out), the documents under docs/, the running processes, the listening ports with
// their preview URLs, the plan with each task's state, and how the last run ended with what the lead
// last told the user. The lead gets it at a run's start and every member with each task, so nobody
// starts blind; it is bounded in size whatever the workspace holds.
package brief

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
	"github.com/mgx-ai/mgx/pkg/authn"
)

// Bounds of a brief's sections, in bytes of text, and of the tree walk.
const (
	treeBytes    = 3500
	docsBytes    = 800
	procsBytes   = 900
	portsBytes   = 900
	planBytes    = 1800
	summaryBytes = 800
	requestBytes = 1200
	treeDepth    = 4
	// maxSubtrees bounds the top-level folders listed one by one (one sandboxd call each).
	maxSubtrees = 16
)

// skipped are folders whose content is dependencies or build output: named in the tree, never
// listed (after `npm install`, node_modules alone would fill any bound).
var skipped = map[string]string{
	"node_modules": "dependencies", "bower_components": "dependencies", "vendor": "dependencies",
	".venv": "a Python environment", "venv": "a Python environment", "__pycache__": "Python bytecode",
	"dist": "build output", "build": "build output", "out": "build output", "target": "build output",
	".next": "build output", ".nuxt": "build output", ".svelte-kit": "build output", ".output": "build output",
	".cache": "a cache", ".parcel-cache": "a cache", ".turbo": "a cache", ".vite": "a cache", "coverage": "test coverage",
	".git": "version control",
}

// Builder builds briefs from sandboxd's view of the session's sandbox. It implements
// workflow.Briefer.
type Builder struct {
	files     sandboxdv1.FileServiceClient
	procs     sandboxdv1.ProcessServiceClient
	sandboxes sandboxdv1.SandboxServiceClient
	// Timeout bounds the sandboxd calls of one brief: a slow sandbox gives a brief that says so,
	// never a stalled run.
	Timeout time.Duration
}

// New returns a Builder over a connection to sandboxd.
func New(cc grpc.ClientConnInterface) *Builder {
	return &Builder{files: sandboxdv1.NewFileServiceClient(cc), procs: sandboxdv1.NewProcessServiceClient(cc),
		sandboxes: sandboxdv1.NewSandboxServiceClient(cc), Timeout: 5 * time.Second}
}

// Brief implements workflow.Briefer.
func (b *Builder) Brief(ctx context.Context, in workflow.BriefInput) string {
	ctx, cancel := context.WithTimeout(authn.WithUser(ctx, in.OwnerID), b.Timeout)
	defer cancel()
	var out strings.Builder
	out.WriteString(workflow.BriefHeading + " — the workspace as it is now\n")
	if in.Original != "" {
		out.WriteString("\nThe user's first request in this session: ")
		out.WriteString(bounded(in.Original, requestBytes))
		out.WriteString("\n")
		if in.Request != "" && in.Request != in.Original {
			out.WriteString("Their latest message: ")
			out.WriteString(bounded(in.Request, requestBytes))
			out.WriteString("\n")
		}
	}

	tree, docs, err := b.tree(ctx, in.SessionID)
	out.WriteString("\nFiles in /workspace (dependency and build folders are named, not listed):\n")
	if err != nil {
		fmt.Fprintf(&out, "  (the file tree could not be read: %s)\n", describe(err))
	} else {
		out.WriteString(tree)
	}
	out.WriteString("\nDocuments under docs/: ")
	if len(docs) == 0 {
		out.WriteString("none yet.\n")
	} else {
		out.WriteString(bounded(strings.Join(docs, ", "), docsBytes))
		out.WriteString("\n")
	}

	out.WriteString("\nBackground processes:")
	out.WriteString(b.processes(ctx, in.SessionID))
	out.WriteString("\nListening ports and their previews:")
	out.WriteString(b.ports(ctx, in.SessionID))

	out.WriteString("\nPlan:")
	out.WriteString(plan(in.Plan, in.PlanFinished))

	if in.Last.Status != "" {
		out.WriteString("\nLast run: ")
		out.WriteString(in.Last.Status)
		if in.Last.Reason != "" {
			out.WriteString(" — ")
			out.WriteString(bounded(in.Last.Reason, 300))
		}
		out.WriteString(".\n")
		if s := strings.TrimSpace(in.Last.Summary); s != "" {
			out.WriteString("What Mike last told the user: ")
			out.WriteString(bounded(s, summaryBytes))
			out.WriteString("\n")
		}
	}
	return strings.TrimRight(out.String(), "\n")
}

// tree lists the workspace: the top level, then each folder worth listing to a few levels, so a huge
// dependency folder cannot push the sources out of the listing. It also returns the documents
// under docs/.
func (b *Builder) tree(ctx context.Context, sid string) (string, []string, error) {
	top, err := b.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: sid, Depth: 1})
	if err != nil {
		return "", nil, err
	}
	var lines []string
	var docs []string
	more := 0
	var walk func(es []*sandboxdv1.FileEntry, indent string)
	walk = func(es []*sandboxdv1.FileEntry, indent string) {
		for _, e := range es {
			if e.GetType() == "directory" {
				if what, skip := skipped[e.GetName()]; skip {
					lines = append(lines, fmt.Sprintf("%s%s/ (%s, not listed)", indent, e.GetName(), what))
					continue
				}
				lines = append(lines, indent+e.GetName()+"/")
				walk(e.GetChildren(), indent+"  ")
				continue
			}
			lines = append(lines, fmt.Sprintf("%s%s (%s)", indent, e.GetName(), size(e.GetSize())))
			if strings.HasPrefix(e.GetPath(), "docs/") {
				docs = append(docs, fmt.Sprintf("%s (%s)", e.GetPath(), size(e.GetSize())))
			}
		}
	}
	subtrees := 0
	for _, e := range top.GetEntries() {
		if e.GetType() != "directory" {
			walk([]*sandboxdv1.FileEntry{e}, "  ")
			continue
		}
		if _, skip := skipped[e.GetName()]; skip || subtrees >= maxSubtrees {
			walk([]*sandboxdv1.FileEntry{e}, "  ")
			continue
		}
		subtrees++
		sub, err := b.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: sid, Root: e.GetPath(), Depth: treeDepth})
		if err != nil {
			lines = append(lines, "  "+e.GetName()+"/ (not readable)")
			continue
		}
		e.Children = sub.GetEntries()
		walk([]*sandboxdv1.FileEntry{e}, "  ")
		if sub.GetTruncated() {
			more++
		}
	}
	if len(lines) == 0 {
		return "  (empty: nothing has been written yet)\n", docs, nil
	}
	var out strings.Builder
	for i, l := range lines {
		if out.Len()+len(l) > treeBytes {
			fmt.Fprintf(&out, "  … and %d more entries (file_list shows a folder)\n", len(lines)-i)
			break
		}
		out.WriteString(l)
		out.WriteString("\n")
	}
	if more > 0 || top.GetTruncated() {
		out.WriteString("  (some folders hold more entries than listed)\n")
	}
	return out.String(), docs, nil
}

func (b *Builder) processes(ctx context.Context, sid string) string {
	resp, err := b.procs.ListProcesses(ctx, &sandboxdv1.ListProcessesRequest{SessionId: sid})
	if err != nil {
		return fmt.Sprintf(" (could not be listed: %s)\n", describe(err))
	}
	ps := resp.GetProcesses()
	if len(ps) == 0 {
		return " none.\n"
	}
	// Running ones first: they are what a follow-up must not start twice.
	slices.SortStableFunc(ps, func(a, b *sandboxdv1.Process) int {
		return boolRank(a.GetState() == "running") - boolRank(b.GetState() == "running")
	})
	var lines []string
	for _, p := range ps {
		state := p.GetState()
		switch state {
		case "running":
			state = fmt.Sprintf("running (pid %d)", p.GetPid())
		case "exited":
			state = fmt.Sprintf("exited with code %d", p.GetExitCode())
		}
		line := fmt.Sprintf("  %s — %s: %s", p.GetName(), state, bounded(p.GetCommand(), 160))
		if cwd := p.GetCwd(); cwd != "" && cwd != "." && cwd != "/workspace" {
			line += " (in " + cwd + ")"
		}
		lines = append(lines, line)
	}
	return "\n" + bounded(strings.Join(lines, "\n"), procsBytes) + "\n"
}

func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}

func (b *Builder) ports(ctx context.Context, sid string) string {
	prev, err := b.sandboxes.GetPreview(ctx, &sandboxdv1.GetPreviewRequest{SessionId: sid})
	if err != nil {
		return fmt.Sprintf(" (could not be listed: %s)\n", describe(err))
	}
	if len(prev.GetPreviews()) == 0 {
		return " none (no server is listening).\n"
	}
	addrs := map[int32]string{}
	if ports, err := b.procs.ListPorts(ctx, &sandboxdv1.ListPortsRequest{SessionId: sid}); err == nil {
		for _, p := range ports.GetPorts() {
			addrs[p.GetPort()] = p.GetAddress()
		}
	}
	var lines []string
	for _, p := range prev.GetPreviews() {
		line := fmt.Sprintf("  port %d", p.GetContainerPort())
		if a := addrs[p.GetContainerPort()]; a != "" {
			line += " (bound to " + a + ")"
		}
		line += " → preview " + p.GetUrl()
		lines = append(lines, line)
	}
	return "\n" + bounded(strings.Join(lines, "\n"), portsBytes) + "\n"
}

// plan renders the plan: open tasks first in full, finished ones after, within planBytes.
func plan(tasks []workflow.Task, finished bool) string {
	if len(tasks) == 0 {
		return " none yet.\n"
	}
	var open, closed []string
	for _, t := range tasks {
		line := fmt.Sprintf("  - %s [%s] %s — %s", t.ID, t.Status, t.Title, events.Display(t.Assignee))
		if len(t.DependsOn) > 0 {
			line += " (after " + strings.Join(t.DependsOn, ", ") + ")"
		}
		if t.Note != "" {
			line += ": " + bounded(t.Note, 200)
		}
		if t.Open() {
			open = append(open, line)
		} else {
			closed = append(closed, line)
		}
	}
	head := "\n"
	if finished {
		head = " (marked finished)\n"
	}
	return head + bounded(strings.Join(append(open, closed...), "\n"), planBytes) + "\n"
}

// bounded cuts s to n bytes on a rune boundary, saying so.
func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + " […]"
}

func size(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", n/(1<<10))
	}
	return fmt.Sprintf("%d B", int64(n))
}

// describe names a sandboxd failure without its internals: the brief reaches a model.
func describe(err error) string {
	switch status.Code(err) {
	case codes.Unavailable:
		return "the sandbox service is unavailable"
	case codes.DeadlineExceeded:
		return "the sandbox did not answer in time"
	case codes.NotFound:
		return "the sandbox is not running"
	}
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return "an error"
}
