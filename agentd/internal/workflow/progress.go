package workflow

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/google/uuid"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/store"
)

// maxEventPaths bounds the paths one file_change event lists; the rest are counted.
const maxEventPaths = 200

// toolProgress turns what a running tool shows (tools.Progress) into events: its output as
// tool_output pieces sharing one message id, and paths it changed as file_change events. Emitting is
// best effort: the tool's result, recorded after it, is what the run depends on.
type toolProgress struct {
	ctx   context.Context
	h     Host
	run   Run
	agent string
	call  llm.ToolCall
	msgID string
	mu    sync.Mutex
}

func newToolProgress(ctx context.Context, h Host, run Run, agent string, call llm.ToolCall) *toolProgress {
	base, err := uuid.Parse(call.MessageID)
	if err != nil {
		base = uuid.New()
	}
	return &toolProgress{ctx: ctx, h: h, run: run, agent: agent, call: call,
		msgID: uuid.NewSHA1(base, []byte("tool_output/"+call.ID)).String()}
}

func (p *toolProgress) Output(stream, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := p.run.scope().Tool(events.TypeToolOutput, p.agent, p.call.Name, text, map[string]any{"call_id": p.call.ID, "stream": stream})
	ev.MessageId = p.msgID
	_ = p.h.Emit(p.ctx, ev)
}

func (p *toolProgress) Changed(paths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.h.Emit(p.ctx, fileChangeEvent(p.run, p.agent, p.call, paths, true))
}

// fileChangeEvent announces changed workspace paths; live ones were seen while the call still ran.
func fileChangeEvent(run Run, agent string, call llm.ToolCall, paths []string, live bool) *agentdv1.Event {
	data := map[string]any{"call_id": call.ID}
	if live {
		data["live"] = true
	}
	shown := paths
	if len(shown) > maxEventPaths {
		shown = paths[:maxEventPaths]
		data["paths_omitted"] = float64(len(paths) - maxEventPaths)
	}
	content := strings.Join(shown, ", ")
	if n := len(paths) - len(shown); n > 0 {
		content += fmt.Sprintf(" and %d more", n)
	}
	ev := run.scope().Tool(events.TypeFileChange, agent, call.Name, content, data)
	ev.Paths = shown
	return ev
}

// artifactEvent announces an artifact; data.url is where its owner downloads it.
func artifactEvent(run Run, agent string, call llm.ToolCall, a store.Artifact) *agentdv1.Event {
	what := a.Name
	if a.Source != "" {
		what = a.Name + " (" + a.Source + ")"
	}
	data := map[string]any{"call_id": call.ID, "artifact_id": a.ID, "name": a.Name, "content_type": a.ContentType,
		"size": float64(a.Size), "url": "/api/sessions/" + run.SessionID + "/artifacts/" + a.ID}
	if a.Width > 0 {
		data["width"], data["height"] = float64(a.Width), float64(a.Height)
	}
	if a.Source != "" {
		data["source"] = a.Source
	}
	ev := run.scope().Tool(events.TypeArtifact, agent, call.Name, what, data)
	// Shown in the chat, under its own message id.
	ev.MessageId = uuid.NewString()
	return ev
}

// checkpointEvent announces the workspace snapshot taken after a call that changed files.
func checkpointEvent(run Run, agent string, call llm.ToolCall, cp *sandboxdv1.Checkpoint) *agentdv1.Event {
	data := map[string]any{"call_id": call.ID, "checkpoint_id": cp.GetId(), "parent_id": cp.GetParentId(),
		"files_changed": float64(cp.GetFilesChanged()), "kind": cp.GetKind()}
	content := fmt.Sprintf("checkpoint %s: %d files changed", cp.GetId(), cp.GetFilesChanged())
	if cp.GetFilesChanged() == 1 {
		content = fmt.Sprintf("checkpoint %s: 1 file changed", cp.GetId())
	}
	return run.scope().Tool(events.TypeCheckpoint, agent, call.Name, content, data)
}
