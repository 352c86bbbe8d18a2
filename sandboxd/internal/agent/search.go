package agent

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// Bounds of a content search: a model asks for a few hundred lines, never for the whole tree.
const (
	searchMaxMatches   = 500
	searchMatchCap     = 5000
	searchMaxLine      = 400
	searchMaxFileBytes = 2 << 20
	searchBudget       = 10 * time.Second
	// searchLineCap bounds how much of one line is read; a minified bundle's megabyte line is cut.
	searchLineCap = 64 << 10
)

var errSearchDone = errors.New("search done")

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	var req agentapi.SearchRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	res, err := s.search(r, req)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) search(r *http.Request, req agentapi.SearchRequest) (agentapi.SearchResult, error) {
	res := agentapi.SearchResult{Matches: []agentapi.SearchMatch{}}
	rel, err := relPath(req.Root)
	if err != nil {
		return res, err
	}
	if req.Pattern == "" {
		return res, errf(agentapi.CodeInvalid, "empty pattern")
	}
	expr := req.Pattern
	if req.IgnoreCase {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return res, errf(agentapi.CodeInvalid, "invalid regular expression: %v", err)
	}
	if req.Glob != "" && !doublestar.ValidatePattern(req.Glob) {
		return res, errf(agentapi.CodeInvalid, "invalid glob %q", req.Glob)
	}
	maxMatches := req.MaxMatches
	if maxMatches <= 0 {
		maxMatches = searchMaxMatches
	}
	maxMatches = min(maxMatches, searchMatchCap)
	maxLine := req.MaxLine
	if maxLine <= 0 {
		maxLine = searchMaxLine
	}
	prune := map[string]bool{}
	for _, p := range req.Prune {
		prune[p] = true
	}
	fi, err := s.root.Stat(rel)
	if err != nil {
		return res, searchError(err, rel)
	}
	deadline := time.Now().Add(searchBudget)
	visit := func(p string, d fs.DirEntry) error {
		if r.Context().Err() != nil || time.Now().After(deadline) {
			res.Truncated = true
			return errSearchDone
		}
		if !d.Type().IsRegular() {
			return nil // symlinks are not followed: their target may lie outside the workspace
		}
		if req.Glob != "" && !globMatch(req.Glob, rel, p) {
			return nil
		}
		return s.searchFile(p, re, maxMatches, maxLine, &res)
	}
	if !fi.IsDir() {
		err = visit(rel, fs.FileInfoToDirEntry(fi))
	} else {
		err = fs.WalkDir(s.root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil //nolint:nilerr // unreadable or vanished meanwhile: the rest is still searched
			}
			if p != rel && ((!req.IncludeHidden && strings.HasPrefix(d.Name(), ".")) || (d.IsDir() && prune[d.Name()])) {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			return visit(p, d)
		})
	}
	if err != nil && !errors.Is(err, errSearchDone) {
		return res, searchError(err, rel)
	}
	return res, nil
}

// searchError describes a failure to search rel without the host path of the workspace, which the
// errors of os carry.
func searchError(err error, rel string) error {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, os.ErrNotExist):
		return errf(agentapi.CodeNotFound, "%s: no such file or directory", rel)
	case strings.Contains(err.Error(), "path escapes"):
		return errf(agentapi.CodeEscape, "%s: resolves outside /workspace", rel)
	case errors.Is(err, syscall.ENOTDIR):
		return errf(agentapi.CodeInvalid, "%s: not a directory", rel)
	case errors.Is(err, os.ErrPermission):
		return errf(agentapi.CodeInvalid, "%s: permission denied", rel)
	}
	return errf(agentapi.CodeInternal, "%s: cannot be searched", rel)
}

// globMatch matches a file's path against the glob: a pattern without a slash matches the name, one
// with a slash the path below the searched root.
func globMatch(glob, root, p string) bool {
	if !strings.Contains(glob, "/") {
		ok, _ := doublestar.Match(glob, path.Base(p))
		return ok
	}
	sub := p
	if root != "." {
		sub = strings.TrimPrefix(p, root+"/")
	}
	ok, _ := doublestar.Match(strings.TrimPrefix(glob, "./"), sub)
	return ok
}

// searchFile searches one file. It is opened without blocking (a FIFO swapped in after the walk
// saw a regular file would otherwise park the search) and read only if it still is a regular file
// with no other name: a hard link's other names may lie outside the workspace.
func (s *Server) searchFile(p string, re *regexp.Regexp, maxMatches, maxLine int, res *agentapi.SearchResult) error {
	f, err := s.root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil //nolint:nilerr // vanished or unreadable: not a search failure
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() || info.Size() > searchMaxFileBytes || hardLinked(info) {
		res.FilesSkipped++
		return nil
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if head, _ := br.Peek(8 << 10); bytes.IndexByte(head, 0) >= 0 {
		res.FilesSkipped++ // binary
		return nil
	}
	res.FilesSearched++
	for n := 1; ; n++ {
		line, err := readLine(br)
		if len(line) > 0 || err == nil {
			if re.Match(line) {
				if len(res.Matches) >= maxMatches {
					res.Truncated = true
					return errSearchDone
				}
				m := agentapi.SearchMatch{Path: p, Line: n, Text: string(line)}
				if len(m.Text) > maxLine {
					cut := maxLine
					for cut > 0 && !utf8.RuneStart(m.Text[cut]) {
						cut--
					}
					m.Text, m.Cut = m.Text[:cut], true
				}
				m.Text = strings.ToValidUTF8(strings.TrimRight(m.Text, "\r"), "\uFFFD")
				res.Matches = append(res.Matches, m)
			}
		}
		if err != nil {
			return nil
		}
	}
}

func hardLinked(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 1
}

// readLine reads one line without its newline, keeping at most searchLineCap bytes of it.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(line) < searchLineCap {
			line = append(line, chunk[:min(len(chunk), searchLineCap-len(line))]...)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return line, io.EOF
			}
			return line, err
		}
		if !isPrefix {
			return line, nil
		}
	}
}
