package agent

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// markerFile is the marker's name in the meta directory.
const markerFile = "workspace.json"

// usageBudget bounds one walk of the workspace for its size.
const usageBudget = 10 * time.Second

func (s *Server) metaDir() (string, error) {
	if s.opts.MetaDir == "" {
		return "", errf(agentapi.CodeFailed, "this sandbox has no meta directory (it runs without workspace volumes)")
	}
	return s.opts.MetaDir, nil
}

func (s *Server) readMarker() (agentapi.Marker, bool, error) {
	dir, err := s.metaDir()
	if err != nil {
		return agentapi.Marker{}, false, err
	}
	b, err := os.ReadFile(filepath.Join(dir, markerFile))
	if errors.Is(err, os.ErrNotExist) {
		return agentapi.Marker{}, false, nil
	}
	if err != nil {
		return agentapi.Marker{}, false, err
	}
	var m agentapi.Marker
	if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
		// Unreadable is not absent: it is reported as a marker naming nothing, which never matches.
		return agentapi.Marker{}, true, nil //nolint:nilerr // see above: a finding, not a failure
	}
	return m, true, nil
}

func (s *Server) handleGetMarker(w http.ResponseWriter, _ *http.Request) {
	m, ok, err := s.readMarker()
	if err != nil {
		s.writeError(w, err)
		return
	}
	if !ok {
		s.writeError(w, errf(agentapi.CodeNotFound, "the workspace has no marker"))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) handlePutMarker(w http.ResponseWriter, r *http.Request) {
	var m agentapi.Marker
	if err := decode(r, &m); err != nil {
		s.writeError(w, err)
		return
	}
	if m.ID == "" {
		s.writeError(w, errf(agentapi.CodeInvalid, "a marker needs an id"))
		return
	}
	dir, err := s.metaDir()
	if err != nil {
		s.writeError(w, err)
		return
	}
	// A check-then-replace must not interleave with another.
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	old, ok, err := s.readMarker()
	if err != nil {
		s.writeError(w, err)
		return
	}
	if ok && (old.ID != m.ID || (old.SessionID != "" && old.SessionID != m.SessionID)) {
		s.writeError(w, errf(agentapi.CodeExists, "the workspace is marked as another's"))
		return
	}
	b, _ := json.Marshal(m)
	if err := writeDurable(dir, markerFile, b); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			s.writeError(w, errf(agentapi.CodeDenied, "the workspace's meta directory is not writable by the sandbox user"))
			return
		}
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// writeDurable replaces dir/name with data so that a crash leaves the old or the new file, never a
// torn one: a synced temporary file renamed over it, then the directory synced.
func writeDurable(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// handleSync flushes the file systems holding the workspace and the meta directory. sandboxd calls
// it before it removes a sandbox that keeps its volumes (reaping, a restart): what the sandbox's
// programs wrote is then on disk, not only in the page cache of a host that might go down next.
func (s *Server) handleSync(w http.ResponseWriter, _ *http.Request) {
	for _, dir := range []string{s.opts.Workspace, s.opts.MetaDir} {
		if dir == "" {
			continue
		}
		if err := syncfs(dir); err != nil {
			s.writeError(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

func (s *Server) handleUsage(w http.ResponseWriter, _ *http.Request) {
	deadline := time.Now().Add(usageBudget)
	var u agentapi.Usage
	u.Bytes, u.Files, u.Partial = diskUsage(s.opts.Workspace, deadline)
	if s.opts.MetaDir != "" {
		var partial bool
		u.MetaBytes, _, partial = diskUsage(s.opts.MetaDir, deadline)
		u.Partial = u.Partial || partial
	}
	writeJSON(w, http.StatusOK, u)
}

// diskUsage walks dir without following symlinks and sums what its entries take on disk (allocated
// blocks, as du does); it stops at deadline with partial set.
func diskUsage(dir string, deadline time.Time) (bytes, files int64, partial bool) {
	n := 0
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // unreadable entries are skipped, not fatal
		}
		if n++; n%1024 == 0 && time.Now().After(deadline) {
			partial = true
			return filepath.SkipAll
		}
		if path == dir {
			return nil
		}
		files++
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				bytes += st.Blocks * 512
			}
		}
		return nil
	})
	return bytes, files, partial
}
