package agent

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// treeEntryCap bounds a tree listing so a node_modules cannot produce a
// response of millions of entries.
const treeEntryCap = 5000

// relPath cleans a caller's path to one relative to the workspace.
func relPath(p string) (string, error) {
	rel, err := workspace.Clean(p)
	if errors.Is(err, workspace.ErrInvalid) {
		return "", errf(agentapi.CodeInvalid, "%q: %v", shortPath(p), err)
	}
	if err != nil {
		return "", errf(agentapi.CodeEscape, "%s: %v", shortPath(p), err)
	}
	return rel, nil
}

func (s *Server) handleTree(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rel, err := relPath(q.Get("root"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	depth, _ := strconv.Atoi(q.Get("depth"))
	if depth <= 0 {
		depth = 2
	}
	depth = min(depth, 10)
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > treeEntryCap {
		limit = treeEntryCap
	}
	t := &treeWalk{root: s.root, hidden: q.Get("include_hidden") == "1", left: limit, prune: map[string]bool{}}
	for _, name := range q["prune"] {
		t.prune[name] = true
	}
	fi, err := s.root.Stat(rel)
	if err != nil {
		s.writeError(w, fsError(err, rel))
		return
	}
	if !fi.IsDir() {
		s.writeError(w, errf(agentapi.CodeInvalid, "%s: not a directory", shortPath(rel)))
		return
	}
	entries, err := t.list(rel, depth)
	if err != nil {
		s.writeError(w, fsError(err, rel))
		return
	}
	writeJSON(w, http.StatusOK, agentapi.Tree{Root: workspace.Display(rel), Entries: entries, Truncated: t.truncated})
}

type treeWalk struct {
	root      *os.Root
	hidden    bool
	prune     map[string]bool // directories listed but not descended
	left      int
	truncated bool
}

func (t *treeWalk) list(dir string, depth int) ([]agentapi.TreeEntry, error) {
	// O_DIRECTORY: what was a directory when listed may be a FIFO by now, and open(2) must fail on it at once
	// rather than wait for a writer.
	f, err := t.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	des, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	sort.Slice(des, func(i, j int) bool {
		if di, dj := des[i].IsDir(), des[j].IsDir(); di != dj {
			return di
		}
		return des[i].Name() < des[j].Name()
	})
	entries := make([]agentapi.TreeEntry, 0, len(des))
	for _, de := range des {
		if !t.hidden && strings.HasPrefix(de.Name(), ".") {
			continue
		}
		if t.left <= 0 {
			t.truncated = true
			break
		}
		t.left--
		p := de.Name()
		if dir != "." {
			p = path.Join(dir, de.Name())
		}
		e := agentapi.TreeEntry{Name: de.Name(), Path: p, Type: "file"}
		// Symlinks are listed as files and never descended: their target
		// may lie outside the workspace.
		if de.IsDir() {
			e.Type = "directory"
			if depth > 1 && !t.prune[de.Name()] {
				children, err := t.list(p, depth-1)
				if err == nil {
					e.Children = children
				}
			}
		} else if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
			e.Size = info.Size()
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// openRegular opens the workspace file rel with flag (O_RDONLY, or O_WRONLY with O_CREATE/O_APPEND, never
// O_TRUNC) only if it is a regular file, without ever blocking, and only if the link guard lets it through.
//
// open(2) of a FIFO blocks until a peer opens the other end, which would park the request, and an OS thread,
// until the caller's deadline; opening a device can have effects of its own. So the path is stat'ed first and
// anything that is not a regular file is refused without being opened. The open itself is O_NONBLOCK and
// O_NOCTTY, and the opened descriptor is checked again: a FIFO swapped in after the stat then opens at once
// (or fails with ENXIO) and is refused. O_NONBLOCK means nothing to a regular file. Truncation is the
// caller's, after these checks, so refusing a file never changes it.
func (s *Server) openRegular(rel string, flag int) (*os.File, os.FileInfo, error) {
	if rel == "." {
		return nil, nil, errf(agentapi.CodeIsDir, "/workspace: is a directory")
	}
	switch fi, err := s.root.Stat(rel); {
	case err == nil && fi.IsDir():
		return nil, nil, errf(agentapi.CodeIsDir, "%s: is a directory", shortPath(rel))
	case err == nil && !fi.Mode().IsRegular():
		return nil, nil, notRegular(rel, fi.Mode())
	case err != nil && (flag&os.O_CREATE == 0 || !errors.Is(err, os.ErrNotExist)):
		return nil, nil, fsError(err, rel)
	}
	f, err := s.root.OpenFile(rel, flag|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o644)
	if err != nil {
		return nil, nil, fsError(err, rel)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = errf(agentapi.CodeIsDir, "%s: is a directory", shortPath(rel))
	} else if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(rel, fi.Mode())
	} else if err == nil {
		err = s.links.check(f, fi, rel)
	}
	if err != nil {
		f.Close()
		return nil, nil, fsError(err, rel)
	}
	return f, fi, nil
}

func (s *Server) handleReadFile(w http.ResponseWriter, r *http.Request) {
	rel, err := relPath(r.URL.Query().Get("path"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	f, fi, err := s.openRegular(rel, os.O_RDONLY)
	if err != nil {
		s.writeError(w, err)
		return
	}
	defer f.Close()
	if fi.Size() > s.opts.MaxReadBytes {
		s.writeError(w, errf(agentapi.CodeTooLarge, "%s: %d bytes exceeds the read limit of %d", shortPath(rel), fi.Size(), s.opts.MaxReadBytes))
		return
	}
	content, err := io.ReadAll(io.LimitReader(f, s.opts.MaxReadBytes+1))
	if err != nil {
		s.writeError(w, fsError(err, rel))
		return
	}
	writeJSON(w, http.StatusOK, agentapi.File{
		Name: path.Base(rel), Path: workspace.Display(rel), Size: int64(len(content)),
		ModifiedAt: fi.ModTime().UTC(), Content: content,
	})
}

func (s *Server) handleWriteFile(w http.ResponseWriter, r *http.Request) {
	var req agentapi.WriteFileRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	rel, err := relPath(req.Path)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if rel == "." {
		s.writeError(w, errf(agentapi.CodeIsDir, "cannot write the workspace itself"))
		return
	}
	if dir := path.Dir(rel); dir != "." {
		if err := s.root.MkdirAll(dir, 0o755); err != nil {
			s.writeError(w, fsError(err, dir))
			return
		}
	}
	flag := os.O_CREATE | os.O_WRONLY
	if req.Append {
		flag |= os.O_APPEND
	}
	f, _, err := s.openRegular(rel, flag)
	if err != nil {
		s.writeError(w, err)
		return
	}
	var terr error
	if !req.Append {
		terr = f.Truncate(0)
	}
	var werr error
	if terr == nil {
		_, werr = f.Write(req.Content)
	}
	if s.cred != nil {
		// On the descriptor: the path may name another file by now.
		_ = f.Chown(int(s.cred.Uid), int(s.cred.Gid))
	}
	fi, serr := f.Stat()
	cerr := f.Close()
	for _, err := range []error{terr, werr, serr, cerr} {
		if err != nil {
			s.writeError(w, fsError(err, rel))
			return
		}
	}
	writeJSON(w, http.StatusOK, agentapi.WriteFileResult{Path: rel, Size: fi.Size()})
}

func (s *Server) handleDeleteFile(w http.ResponseWriter, r *http.Request) {
	rel, err := relPath(r.URL.Query().Get("path"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	if rel == "." {
		s.writeError(w, errf(agentapi.CodeInvalid, "cannot delete the workspace itself"))
		return
	}
	if _, err := s.root.Lstat(rel); err != nil {
		s.writeError(w, fsError(err, rel))
		return
	}
	if err := s.root.RemoveAll(rel); err != nil && !os.IsNotExist(err) {
		s.writeError(w, fsError(err, rel))
		return
	}
	writeJSON(w, http.StatusOK, agentapi.DeleteFileResult{Path: rel, Deleted: true})
}
