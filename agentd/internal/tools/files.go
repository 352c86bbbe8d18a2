package tools

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// Bounds of what file tools show a model.
const (
	readDefaultLines = 400
	readMaxLines     = 2000
	readMaxBytes     = 16 << 10
	readMaxLineChars = 2000
	snippetContext   = 3
	searchMaxShown   = 200
	listMaxEntries   = 500
)

// dependencyDirs are folders file_list and file_search leave alone unless asked for by path: they
// are large, generated, and not what anyone edits.
var dependencyDirs = []string{
	"node_modules", ".git", ".hg", ".svn", "dist", "build", ".next", ".nuxt", ".svelte-kit", ".output", ".vite",
	".turbo", ".parcel-cache", ".cache", "coverage", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache",
	".ruff_cache", ".tox", "target", ".pnpm-store", ".yarn", "bower_components",
}

type fileReadArgs struct {
	Path   string `json:"path"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
}

type fileWriteArgs struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

type fileEditArgs struct {
	Path       string `json:"path"`
	OldStr     string `json:"old_str"`
	NewStr     string `json:"new_str"`
	ReplaceAll bool   `json:"replace_all"`
}

type fileInsertArgs struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Text string `json:"text"`
}

type fileSearchArgs struct {
	Pattern string `json:"pattern"`
	Path    string `json:"path"`
	Glob    string `json:"glob"`
}

type fileListArgs struct {
	Path  string `json:"path"`
	Depth int    `json:"depth"`
}

var fileSpecs = []*Spec{
	define(Spec{Name: FileRead,
		Description: "Read a text file of the workspace as numbered lines (cat -n style), a page at a time: offset is the first line " +
			"(1-based, default 1), limit how many lines (default 400, at most 2000). The answer says which lines of how many " +
			"it shows and how to read on. Use file_search to find where something is in a large file.",
		Schema: `{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096},"offset":{"type":"integer","minimum":1},"limit":{"type":"integer","minimum":1,"maximum":2000}},"required":["path"],"additionalProperties":false}`},
		fileRead),
	define(Spec{Name: FileWrite, SideEffects: true,
		Description: "Create a file, or replace a whole file, in the workspace (parent directories are created). To change part " +
			"of an existing file use file_edit or file_insert instead: they are shorter and cannot lose the rest of the file.",
		Schema: `{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096},"content":{"type":"string"}},"required":["path","content"],"additionalProperties":false}`},
		fileWrite),
	define(Spec{Name: FileEdit, SideEffects: true,
		Description: "Replace text in a file: old_str must match the file exactly (whitespace and indentation included) and occur " +
			"exactly once, unless replace_all is true. Include enough surrounding lines in old_str to make it unique. new_str " +
			"may be empty to delete. The answer shows the edited lines with their numbers.",
		Schema: `{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096},"old_str":{"type":"string","minLength":1},"new_str":{"type":"string"},"replace_all":{"type":"boolean"}},"required":["path","old_str","new_str"],"additionalProperties":false}`},
		fileEdit),
	define(Spec{Name: FileInsert, SideEffects: true,
		Description: "Insert text after line `line` of a file (0 inserts at the top; the file's line count appends at the end). " +
			"The answer shows the lines around the insertion.",
		Schema: `{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096},"line":{"type":"integer","minimum":0},"text":{"type":"string","minLength":1}},"required":["path","line","text"],"additionalProperties":false}`},
		fileInsert),
	define(Spec{Name: FileSearch,
		Description: "Search file contents with a regular expression (RE2 syntax; prefix (?i) to ignore case) and get path:line: " +
			"text for each matching line. path limits the search to a directory or file; glob to files like \"*.tsx\" or " +
			"\"src/**/*.ts\". Dependency, VCS and build folders (node_modules, .git, dist…) and hidden files are skipped " +
			"unless path points into them; binary and large files are skipped. At most 200 matches are shown.",
		Schema: `{"type":"object","properties":{"pattern":{"type":"string","minLength":1,"maxLength":1000},"path":{"type":"string","maxLength":4096},"glob":{"type":"string","maxLength":1000}},"required":["pattern"],"additionalProperties":false}`},
		fileSearch),
	define(Spec{Name: FileList,
		Description: "List a directory of the workspace as a tree with file sizes (default: the workspace, 2 levels deep; depth " +
			"up to 6). Dependency, VCS and build folders (node_modules, .git, dist…) are shown but not expanded unless you " +
			"list them by path.",
		Schema: `{"type":"object","properties":{"path":{"type":"string","maxLength":4096},"depth":{"type":"integer","minimum":1,"maximum":6}},"additionalProperties":false}`},
		fileList),
}

// cleanPath makes a model's path relative to the workspace; "/workspace/x" and "./x" are "x".
func cleanPath(p string) string {
	p = strings.TrimSpace(p)
	if p == "/workspace" {
		return "."
	}
	p = strings.TrimPrefix(p, "/workspace/")
	return path.Clean(p)
}

// checkPrefix refuses a write outside the role's directory.
func checkPrefix(c *Call, p string) (Result, bool) {
	if c.WritePrefix == "" {
		return Result{}, true
	}
	prefix := strings.TrimSuffix(c.WritePrefix, "/")
	if p == prefix || strings.HasPrefix(p, prefix+"/") {
		return Result{}, true
	}
	return fail("you may only write under %s/ (not %s)", prefix, p), false
}

// readBytes reads a whole file with its original bytes, whatever its encoding on the wire.
func (x *Executor) readBytes(ctx context.Context, sid, p string) ([]byte, bool, error) {
	r, err := x.files.ReadFile(ctx, &sandboxdv1.ReadFileRequest{SessionId: sid, Path: p})
	if err != nil {
		return nil, false, err
	}

	if r.GetEncoding() == "base64" {
		b, err := base64.StdEncoding.DecodeString(r.GetContent())
		return b, true, err
	}
	return []byte(r.GetContent()), false, nil
}

// writeBytes writes content back in the encoding that carries it unchanged.
func (x *Executor) writeBytes(ctx context.Context, sid, p string, content []byte) (*sandboxdv1.WriteFileResponse, error) {
	req := &sandboxdv1.WriteFileRequest{SessionId: sid, Path: p, Content: string(content)}
	if !validUTF8(content) {
		req.Content, req.Encoding = base64.StdEncoding.EncodeToString(content), "base64"
	}
	return x.files.WriteFile(ctx, req)
}

func validUTF8(b []byte) bool { return utf8.Valid(b) }

// fileError turns a failed read of p into what the model can act on, or nil for a failure of
// another kind (reported as such by Execute).
func fileError(p string, err error) *Result {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var r Result
	switch {
	case st.Code() == codes.NotFound:
		r = fail("%s does not exist; file_list shows what does.", p)
	case st.Code() == codes.FailedPrecondition && strings.Contains(st.Message(), "is a directory"):
		r = fail("%s is a directory; file_list shows what it holds.", p)
	case st.Code() == codes.FailedPrecondition && strings.Contains(st.Message(), "read limit"):
		r = fail("%s is too large to read whole (%s). Find what you need with file_search, or read part of it with sandbox_shell (e.g. sed -n '100,200p').", p, st.Message())
	default:
		return nil
	}
	return &r
}

// lineStarts returns the byte offset of each line's start; a final newline does not start a line.
func lineStarts(b []byte) []int {
	starts := []int{0}
	for i, ch := range b {
		if ch == '\n' && i+1 < len(b) {
			starts = append(starts, i+1)
		}
	}
	if len(b) == 0 {
		return nil
	}
	return starts
}

// lineAt is the 1-based line holding byte offset off.
func lineAt(starts []int, off int) int {
	lo, hi := 0, len(starts)
	for lo < hi {
		mid := (lo + hi) / 2
		if starts[mid] <= off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return max(lo, 1)
}

// numbered renders lines from..to (1-based, inclusive) of b as "   12\ttext".
func numbered(b []byte, starts []int, from, to int) string {
	var out strings.Builder
	for n := from; n <= to && n <= len(starts); n++ {
		end := len(b)
		if n < len(starts) {
			end = starts[n]
		}
		line := strings.TrimSuffix(string(b[starts[n-1]:end]), "\n")
		line = strings.TrimSuffix(line, "\r")
		if len(line) > readMaxLineChars {
			cut := readMaxLineChars
			for cut > 0 && !isRuneStart(line[cut]) {
				cut--
			}
			line = fmt.Sprintf("%s… (line cut: %d more characters)", line[:cut], len(line)-cut)
		}
		fmt.Fprintf(&out, "%6d\t%s\n", n, toText([]byte(line)))
	}
	return out.String()
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func fileRead(ctx context.Context, x *Executor, c *Call, a *fileReadArgs) (Result, error) {
	p := cleanPath(a.Path)
	b, binary, err := x.readBytes(ctx, c.SessionID, p)
	if err != nil {
		if r := fileError(p, err); r != nil {
			return *r, nil
		}
		return Result{}, err
	}
	if binary || bytes.IndexByte(b[:min(len(b), 8<<10)], 0) >= 0 {
		return fail("%s is a binary file (%s); it cannot be shown as text.", p, size(int64(len(b)))), nil
	}
	starts := lineStarts(b)
	total := len(starts)
	if total == 0 {
		return Result{Output: p + " is empty (0 lines)."}, nil
	}
	from := max(a.Offset, 1)
	if from > total {
		return fail("%s has %s; offset %d is past its end.", p, plural(total, "line"), from), nil
	}
	limit := a.Limit
	if limit <= 0 {
		limit = readDefaultLines
	}
	limit = min(limit, readMaxLines)
	to := min(from+limit-1, total)
	// A page also stops at a byte budget, so a file of long lines does not flood the context.
	body := numbered(b, starts, from, to)
	for len(body) > readMaxBytes && to > from {
		to = from + (to-from)/2
		body = numbered(b, starts, from, to)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%s: lines %d–%d of %d (%s)\n", p, from, to, total, size(int64(len(b))))
	out.WriteString(body)
	if to < total {
		fmt.Fprintf(&out, "(%s more: call file_read with offset=%d to continue)\n", plural(total-to, "line"), to+1)
	}
	return Result{Output: out.String()}, nil
}

func fileWrite(ctx context.Context, x *Executor, c *Call, a *fileWriteArgs) (Result, error) {
	p := cleanPath(a.Path)
	if r, ok := checkPrefix(c, p); !ok {
		return r, nil
	}
	r, err := x.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: c.SessionID, Path: p, Content: a.Content})
	if err != nil {
		return Result{}, err
	}
	lines := len(lineStarts([]byte(a.Content)))
	return Result{Output: fmt.Sprintf("wrote %s (%s, %s)", r.GetPath(), size(int64(r.GetSize())), plural(lines, "line")),
		Paths: []string{r.GetPath()}}, nil
}

func fileEdit(ctx context.Context, x *Executor, c *Call, a *fileEditArgs) (Result, error) {
	p := cleanPath(a.Path)
	if r, ok := checkPrefix(c, p); !ok {
		return r, nil
	}
	if a.OldStr == a.NewStr {
		return fail("old_str and new_str are identical: there is nothing to change."), nil
	}
	b, _, err := x.readBytes(ctx, c.SessionID, p)
	if err != nil {
		if r := fileError(p, err); r != nil {
			return *r, nil
		}
		return Result{}, err
	}
	oldStr, newStr := []byte(a.OldStr), []byte(a.NewStr)
	n := bytes.Count(b, oldStr)
	if n == 0 && bytes.Contains(b, []byte("\r\n")) && bytes.Contains(oldStr, []byte("\n")) && !bytes.Contains(oldStr, []byte("\r\n")) {
		// The file has Windows line endings and the model wrote Unix ones.
		oldStr = bytes.ReplaceAll(oldStr, []byte("\n"), []byte("\r\n"))
		newStr = bytes.ReplaceAll(newStr, []byte("\n"), []byte("\r\n"))
		n = bytes.Count(b, oldStr)
	}
	starts := lineStarts(b)
	switch {
	case n == 0:
		return fail("%s", noMatch(p, b, starts, a.OldStr)), nil
	case n > 1 && !a.ReplaceAll:
		var lines []string
		for i, off := 0, 0; i < n && i < 10; i++ {
			j := bytes.Index(b[off:], oldStr)
			lines = append(lines, fmt.Sprint(lineAt(starts, off+j)))
			off += j + len(oldStr)
		}
		more := ""
		if n > 10 {
			more = ", …"
		}
		return fail("old_str occurs %d times in %s (at lines %s%s); it must occur exactly once. Include more of the surrounding lines "+
			"in old_str to pick one, or set replace_all to true to replace every occurrence.", n, p, strings.Join(lines, ", "), more), nil
	}
	first := bytes.Index(b, oldStr)
	var out []byte
	if a.ReplaceAll {
		out = bytes.ReplaceAll(b, oldStr, newStr)
	} else {
		out = make([]byte, 0, len(b)-len(oldStr)+len(newStr))
		out = append(append(append(out, b[:first]...), newStr...), b[first+len(oldStr):]...)
	}
	if _, err := x.writeBytes(ctx, c.SessionID, p, out); err != nil {
		return Result{}, err
	}
	what := "replaced 1 occurrence"
	if a.ReplaceAll {
		what = fmt.Sprintf("replaced %s", plural(n, "occurrence"))
	}
	return Result{Output: fmt.Sprintf("edited %s: %s. %s", p, what, snippet(p, out, first, len(newStr))), Paths: []string{p}}, nil
}

// snippet shows the lines of b around [off, off+n) with their numbers, after an edit.
func snippet(p string, b []byte, off, n int) string {
	starts := lineStarts(b)
	if len(starts) == 0 {
		return p + " is now empty."
	}
	first := lineAt(starts, off)
	last := lineAt(starts, max(off+n-1, off))
	from, to := max(first-snippetContext, 1), min(last+snippetContext, len(starts))
	body := numbered(b, starts, from, to)
	if len(body) > readMaxBytes/2 {
		body = headTail(body, readMaxBytes/4, readMaxBytes/4)
	}
	return fmt.Sprintf("Lines %d–%d of %d now read:\n%s", from, to, len(starts), body)
}

// noMatch explains a missing match and points at the lines that look like what the model meant.
func noMatch(p string, b []byte, starts []int, oldStr string) string {
	var msg strings.Builder
	fmt.Fprintf(&msg, "old_str was not found in %s. It must match the file exactly, including whitespace and indentation.", p)
	first := ""
	for _, l := range strings.Split(oldStr, "\n") {
		if strings.TrimSpace(l) != "" {
			first = strings.TrimSpace(l)
			break
		}
	}
	if first == "" {
		return msg.String()
	}
	var candidates []int
	for i := range starts {
		end := len(b)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		if strings.Contains(strings.TrimSpace(string(b[starts[i]:end])), first) {
			candidates = append(candidates, i+1)
		}
	}
	if len(candidates) == 0 {
		// Whitespace-insensitive: the line may be indented or spaced differently.
		norm := strings.Join(strings.Fields(first), " ")
		for i := range starts {
			end := len(b)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			if strings.Contains(strings.Join(strings.Fields(string(b[starts[i]:end])), " "), norm) {
				candidates = append(candidates, i+1)
			}
		}
	}
	if len(candidates) == 0 {
		msg.WriteString(" No line of the file contains its first line either; read the file again with file_read (it may have changed) or find the text with file_search.")
		return msg.String()
	}
	fmt.Fprintf(&msg, " Its first line (%q) appears at:\n", truncateRunes(first, 120))
	for i, n := range candidates {
		if i == 5 {
			fmt.Fprintf(&msg, "…and %d more.\n", len(candidates)-5)
			break
		}
		msg.WriteString(numbered(b, starts, n, n))
	}
	msg.WriteString("Read those lines with file_read and copy them exactly into old_str.")
	return msg.String()
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func fileInsert(ctx context.Context, x *Executor, c *Call, a *fileInsertArgs) (Result, error) {
	p := cleanPath(a.Path)
	if r, ok := checkPrefix(c, p); !ok {
		return r, nil
	}
	b, _, err := x.readBytes(ctx, c.SessionID, p)
	if err != nil {
		if r := fileError(p, err); r != nil {
			return *r, nil
		}
		return Result{}, err
	}
	starts := lineStarts(b)
	total := len(starts)
	if a.Line > total {
		return fail("%s has %s; line %d is past its end (use line=%d to append).", p, plural(total, "line"), a.Line, total), nil
	}
	off := len(b)
	if a.Line < total {
		off = starts[a.Line]
	}
	text := a.Text
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if bytes.Contains(b, []byte("\r\n")) {
		text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")
	}
	prefix := b[:off]
	if off == len(b) && len(b) > 0 && b[len(b)-1] != '\n' {
		// Appending after a last line without its newline.
		prefix = append(append([]byte(nil), prefix...), '\n')
	}
	out := make([]byte, 0, len(b)+len(text)+1)
	out = append(append(append(out, prefix...), text...), b[off:]...)
	if _, err := x.writeBytes(ctx, c.SessionID, p, out); err != nil {
		return Result{}, err
	}
	return Result{Output: fmt.Sprintf("inserted %s after line %d of %s. %s", plural(len(lineStarts([]byte(text))), "line"), a.Line, p,
		snippet(p, out, len(prefix), len(text))), Paths: []string{p}}, nil
}

func fileSearch(ctx context.Context, x *Executor, c *Call, a *fileSearchArgs) (Result, error) {
	root := cleanPath(a.Path)
	if a.Path == "" {
		root = ""
	}
	r, err := x.files.SearchFiles(ctx, &sandboxdv1.SearchFilesRequest{SessionId: c.SessionID, Pattern: a.Pattern, Path: root,
		Glob: a.Glob, Prune: dependencyDirs, MaxMatches: searchMaxShown + 1})
	if err != nil {
		return Result{}, err
	}
	where := "the workspace"
	if root != "" && root != "." {
		where = root
	}
	if a.Glob != "" {
		where += " (" + a.Glob + ")"
	}
	ms := r.GetMatches()
	if len(ms) == 0 {
		return Result{Output: fmt.Sprintf("No matches for /%s/ in %s (%s searched; %s skipped as binary or larger than 2 MB).",
			a.Pattern, where, plural(int(r.GetFilesSearched()), "file"), plural(int(r.GetFilesSkipped()), "file"))}, nil
	}
	truncated := r.GetTruncated() || len(ms) > searchMaxShown
	if len(ms) > searchMaxShown {
		ms = ms[:searchMaxShown]
	}
	files := map[string]bool{}
	var out strings.Builder
	for _, m := range ms {
		files[m.GetPath()] = true
		text := m.GetText()
		if m.GetCut() {
			text += " …"
		}
		fmt.Fprintf(&out, "%s:%d: %s\n", m.GetPath(), m.GetLine(), text)
	}
	head := fmt.Sprintf("%s in %s for /%s/ in %s:\n", plural(len(ms), "match"), plural(len(files), "file"), a.Pattern, where)
	if truncated {
		head = fmt.Sprintf("The first %s (in %s) for /%s/ in %s — there are more: narrow the search with path or glob, or a more specific pattern:\n",
			plural(len(ms), "match"), plural(len(files), "file"), a.Pattern, where)
	}
	return Result{Output: head + out.String()}, nil
}

func fileList(ctx context.Context, x *Executor, c *Call, a *fileListArgs) (Result, error) {
	root := cleanPath(a.Path)
	if a.Path == "" {
		root = ""
	}
	depth := a.Depth
	if depth <= 0 {
		depth = 2
	}
	// A dependency folder asked for by name is listed; the ones inside it are not expanded.
	r, err := x.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: c.SessionID, Root: root, Depth: int32(depth),
		IncludeHidden: true, Prune: dependencyDirs})
	if err != nil {
		return Result{}, err
	}
	pruned := map[string]bool{}
	for _, d := range dependencyDirs {
		pruned[d] = true
	}
	var out strings.Builder
	shown, files, dirs := 0, 0, 0
	var walk func(es []*sandboxdv1.FileEntry, indent string, level int)
	walk = func(es []*sandboxdv1.FileEntry, indent string, level int) {
		for _, e := range es {
			if shown >= listMaxEntries {
				return
			}
			shown++
			if e.GetType() == "directory" {
				dirs++
				note := ""
				if pruned[e.GetName()] && len(e.GetChildren()) == 0 {
					note = "  (not expanded: dependencies or build output)"
				}
				fmt.Fprintf(&out, "%s%s/%s\n", indent, e.GetName(), note)
				walk(e.GetChildren(), indent+"  ", level+1)
				continue
			}
			files++
			fmt.Fprintf(&out, "%s%s  %s\n", indent, e.GetName(), size(int64(e.GetSize())))
		}
	}
	walk(r.GetEntries(), "", 1)
	name := r.GetRoot()
	if name == "" {
		name = "/workspace"
	}
	if shown == 0 {
		return Result{Output: name + " is empty."}, nil
	}
	head := fmt.Sprintf("%s (%s, %s shown, %d levels deep):\n", name, plural(dirs, "directory"), plural(files, "file"), depth)
	tail := ""
	if shown >= listMaxEntries || r.GetTruncated() {
		tail = "(the listing was cut: list a subdirectory by path, or use a smaller depth)\n"
	}
	return Result{Output: head + out.String() + tail}, nil
}
