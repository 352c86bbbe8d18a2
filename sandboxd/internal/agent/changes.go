package agent

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/changes"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// changeTracker is the workspace's change journal (a Server field).
type changeTracker = changes.Tracker

// maxChangesWait bounds how long GET /v1/changes waits for a change.
const maxChangesWait = 30 * time.Second

// startChanges tracks the workspace from the agent's start, so the first question about changes
// already has an answer. Without a tracker the endpoint reports itself unavailable.
func (s *Server) startChanges() {
	t, err := changes.Start(changes.Options{Root: s.opts.Workspace, Skip: workspace.Heavy, Logger: s.opts.Logger})
	if err != nil {
		s.opts.Logger.Error("workspace change tracking is off", "err", err)
		return
	}
	s.changes = t
}

func (s *Server) handleChanges(w http.ResponseWriter, r *http.Request) {
	if s.changes == nil {
		s.writeError(w, errf(agentapi.CodeUnhealthy, "workspace change tracking is unavailable"))
		return
	}
	q := r.URL.Query()
	cur, ok := changes.ParseCursor(q.Get("cursor"))
	if !ok {
		s.writeError(w, errf(agentapi.CodeInvalid, "malformed cursor %q", q.Get("cursor")))
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	waitMS, _ := strconv.Atoi(q.Get("wait_ms"))
	var res changes.Result
	if wait := min(time.Duration(waitMS)*time.Millisecond, maxChangesWait); wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		res = s.changes.Wait(ctx, cur, limit)
		cancel()
	} else {
		res = s.changes.Since(cur, limit)
	}
	out := agentapi.Changes{Cursor: res.Cursor.String(), Reset: res.Reset, Truncated: res.Truncated, Mode: res.Mode}
	for _, c := range res.Changes {
		out.Changes = append(out.Changes, agentapi.Change{Path: c.Path, Kind: c.Kind, Dir: c.Dir})
	}
	writeJSON(w, http.StatusOK, out)
}
