package agent

import (
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/checkpoint"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// historyDir is the checkpoint history's directory in the meta directory.
const historyDir = "history"

// checkpoints returns the workspace's history, opening it on first use, with the caller's list of
// excluded directories (nil: the list in force, for calls that do not walk the workspace) and
// length (0: the length in force).
func (s *Server) checkpoints(exclude []string, keep int) (*checkpoint.Store, error) {
	dir, err := s.metaDir()
	if err != nil {
		return nil, err
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.history == nil {
		h, err := checkpoint.Open(s.opts.Workspace, filepath.Join(dir, historyDir), checkpoint.Options{})
		if err != nil {
			return nil, historyError(err)
		}
		s.history = h
	}
	if exclude != nil {
		s.history.SetExclude(exclude)
	}
	s.history.SetKeep(keep)
	return s.history, nil
}

// historyError turns the history's errors into the agent's codes.
func historyError(err error) error {
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		return errf(agentapi.CodeNoCheckpoint, "%v", err)
	case errors.Is(err, checkpoint.ErrNoPath):
		return errf(agentapi.CodeNotFound, "%v", err)
	case errors.Is(err, checkpoint.ErrInvalid):
		return errf(agentapi.CodeInvalid, "%v", err)
	case errors.Is(err, fs.ErrPermission):
		return errf(agentapi.CodeDenied, "the workspace's history or a file of the workspace is not writable by the sandbox user")
	}
	return err
}

func cleanScope(p string) (string, error) {
	rel, err := workspace.Clean(p)
	if err != nil {
		return "", errf(agentapi.CodeEscape, "path %q: %v", p, err)
	}
	return rel, nil
}

func (s *Server) handleCreateCheckpoint(w http.ResponseWriter, r *http.Request) {
	var req agentapi.CheckpointRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	h, err := s.checkpoints(req.Exclude, req.Keep)
	if err != nil {
		s.writeError(w, err)
		return
	}
	m, created, err := h.Create(checkpoint.Meta{Kind: req.Kind, Message: req.Message, Agent: req.Agent, RunID: req.RunID, Step: req.Step})
	if err != nil {
		s.writeError(w, historyError(err))
		return
	}
	writeJSON(w, http.StatusOK, agentapi.CheckpointResult{Checkpoint: m, Created: created})
}

func (s *Server) handleListCheckpoints(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	h, err := s.checkpoints(nil, 0)
	if err != nil {
		s.writeError(w, err)
		return
	}
	list, more, err := h.List(limit, r.URL.Query().Get("before"))
	if err != nil {
		s.writeError(w, historyError(err))
		return
	}
	if list == nil {
		list = []agentapi.Checkpoint{}
	}
	writeJSON(w, http.StatusOK, agentapi.CheckpointList{Checkpoints: list, More: more})
}

func (s *Server) handleDiffCheckpoint(w http.ResponseWriter, r *http.Request) {
	var req agentapi.CheckpointDiffRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	scope, err := cleanScope(req.Path)
	if err != nil {
		s.writeError(w, err)
		return
	}
	h, err := s.checkpoints(req.Exclude, 0)
	if err != nil {
		s.writeError(w, err)
		return
	}
	d, err := h.Diff(req.ID, req.Against, scope)
	if err != nil {
		s.writeError(w, historyError(err))
		return
	}
	if d.Files == nil {
		d.Files = []checkpoint.FileDiff{}
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) handleRestoreCheckpoint(w http.ResponseWriter, r *http.Request) {
	var req agentapi.CheckpointRestoreRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	scope, err := cleanScope(req.Path)
	if err != nil {
		s.writeError(w, err)
		return
	}
	h, err := s.checkpoints(req.Exclude, req.Keep)
	if err != nil {
		s.writeError(w, err)
		return
	}
	before, n, err := h.Restore(req.ID, scope)
	if err != nil {
		s.writeError(w, historyError(err))
		return
	}
	writeJSON(w, http.StatusOK, agentapi.CheckpointRestoreResult{Before: before, FilesChanged: n})
}
