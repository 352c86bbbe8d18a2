package agent

import (
	"io"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// treeEntryCap bounds a tree listing so a node_modules cannot produce a
// response of millions of entries.
const treeEntryCap = 5000

// relPath cleans a caller's path to one relative to the workspace.
func relPath(p string) (string, error) {
	rel, err := workspace.Clean(p)
	if err != nil {
		return "", errf(agentapi.CodeEscape, "%s: %v", p, err)
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
		s.writeError(w, rootError(err, rel))
		return
	}
	if !fi.IsDir() {
		s.writeError(w, errf(agentapi.CodeInvalid, "%s: not a directory", rel))
		return
	}
	entries, err := t.list(rel, depth)
	if err != nil {
		s.writeError(w, rootError(err, rel))
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
	f, err := t.root.Open(dir)
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

func (s *Server) handleReadFile(w http.ResponseWriter, r *http.Request) {
	rel, err := relPath(r.URL.Query().Get("path"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	f, err := s.root.Open(rel)
	if err != nil {
		s.writeError(w, rootError(err, rel))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.writeError(w, err)
		return
	}
	if fi.IsDir() {
		s.writeError(w, errf(agentapi.CodeIsDir, "%s: is a directory", rel))
		return
	}
	if fi.Size() > s.opts.MaxReadBytes {
		s.writeError(w, errf(agentapi.CodeTooLarge, "%s: %d bytes exceeds the read limit of %d", rel, fi.Size(), s.opts.MaxReadBytes))
		return
	}
	content, err := io.ReadAll(io.LimitReader(f, s.opts.MaxReadBytes+1))
	if err != nil {
		s.writeError(w, rootError(err, rel))
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
			s.writeError(w, rootError(err, dir))
			return
		}
	}
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if req.Append {
		flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := s.root.OpenFile(rel, flag, 0o644)
	if err != nil {
		s.writeError(w, rootError(err, rel))
		return
	}
	_, werr := f.Write(req.Content)
	fi, serr := f.Stat()
	cerr := f.Close()
	for _, err := range []error{werr, serr, cerr} {
		if err != nil {
			s.writeError(w, err)
			return
		}
	}
	if s.cred != nil {
		_ = s.root.Lchown(rel, int(s.cred.Uid), int(s.cred.Gid))
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
		s.writeError(w, rootError(err, rel))
		return
	}
	if err := s.root.RemoveAll(rel); err != nil && !os.IsNotExist(err) {
		s.writeError(w, rootError(err, rel))
		return
	}
	writeJSON(w, http.StatusOK, agentapi.DeleteFileResult{Path: rel, Deleted: true})
}
