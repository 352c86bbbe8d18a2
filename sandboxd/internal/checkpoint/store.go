package checkpoint

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/durable"
)

// Store is one workspace's history. Its methods are safe for concurrent use; they run one at a time.
type Store struct {
	root string // the workspace
	dir  string // the history, outside the workspace
	opts Options

	mu sync.Mutex
	// head and headTree cache the latest checkpoint (loaded on first use).
	loaded   bool
	head     Meta
	headTree tree
	// index caches each file's object by its stat, so unchanged files are not read again.
	index map[string]indexEntry
	// count is the number of checkpoints in the log (known once loaded).
	count int
	// dropped counts the checkpoints pruned since the last collection; dirty says a collection is
	// due regardless (a checkpoint failed half-way, or a crash left leftovers).
	dropped int
	dirty   bool
}

type indexEntry struct {
	Size  int64  `json:"s"`
	MTime int64  `json:"t"`
	CTime int64  `json:"c"`
	Ino   uint64 `json:"i"`
	Hash  string `json:"h"`
}

// Open returns the history kept in dir of the workspace at root, creating dir's layout.
func Open(root, dir string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Exclude == nil {
		opts.Exclude = func(string) bool { return false }
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	for _, d := range []string{dir, filepath.Join(dir, "objects"), filepath.Join(dir, "trees"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("checkpoint history: %w", err)
		}
	}
	return &Store{root: root, dir: dir, opts: opts}, nil
}

var idPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// ValidID reports whether id has the form of a checkpoint id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// SetExclude replaces the names of the directories skipped wherever they appear. The history is
// consistent only as long as it stays the same; sandboxd sends its configured list with every call.
func (s *Store) SetExclude(names []string) {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	s.mu.Lock()
	s.opts.Exclude = func(name string) bool { return set[name] }
	s.mu.Unlock()
}

// SetKeep replaces the history's length (n <= 0: the length in force stays). A shorter length
// takes effect with the next checkpoint.
func (s *Store) SetKeep(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.opts.Keep = n
	s.mu.Unlock()
}

// Create snapshots the workspace. When nothing changed since the latest checkpoint, that one is
// returned with created false (a "before_restore" is never made twice for one state either).
// Checkpoints beyond the history's length are dropped, oldest first.
func (s *Store) Create(m Meta) (Meta, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Also after a failure: what it left is collected, which may be what a full volume needs.
	defer s.maintain()
	return s.create(m)
}

// pendingName marks a checkpoint in progress in tmp/: left behind by a crash, it says objects may
// have been written that no tree names.
const pendingName = "create.pending"

func (s *Store) create(m Meta) (_ Meta, _ bool, err error) {
	if err := s.load(); err != nil {
		return Meta{}, false, err
	}
	pending := filepath.Join(s.dir, "tmp", pendingName)
	if err := os.WriteFile(pending, nil, 0o600); err != nil {
		return Meta{}, false, err
	}
	defer func() {
		if err != nil {
			s.dirty = true // its objects may be orphans: collected by the next checkpoint
		} else if os.Remove(pending) != nil {
			s.dirty = true
		}
	}()
	t, err := s.walk(true)
	if err != nil {
		return Meta{}, false, err
	}
	if s.head.ID != "" && sameTree(t, s.headTree) {
		return s.head, false, nil
	}
	if m.Kind == "" {
		m.Kind = KindManual
	}
	m.Parent = s.head.ID
	m.Created = s.opts.Now().UTC()
	m.FilesChanged = len(changedFiles(s.headTree, t, ""))
	b, err := json.Marshal(t)
	if err != nil {
		return Meta{}, false, err
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\n%d\n", m.Parent, m.Created.UnixNano())
	sum.Write(b)
	m.ID = hex.EncodeToString(sum.Sum(nil))[:16]
	// The objects go to disk before the tree that names them, and the tree before the log line that
	// makes it a checkpoint: a crash leaves at worst unreferenced objects, never a checkpoint whose
	// content is missing.
	if err := durable.SyncFS(s.dir); err != nil {
		return Meta{}, false, err
	}
	if err := durable.WriteFile(filepath.Join(s.dir, "trees"), m.ID+".json", b); err != nil {
		return Meta{}, false, err
	}
	if err := s.appendLog(m); err != nil {
		return Meta{}, false, err
	}
	s.count++
	s.head, s.headTree = m, t
	s.saveIndex()
	return m, true, nil
}

// List returns up to limit checkpoints, newest first, older than before when it is set; more says
// whether older ones remain.
func (s *Store) List(limit int, before string) (out []Meta, more bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.readLog()
	if err != nil {
		return nil, false, err
	}
	i := len(all) - 1
	if before != "" {
		for i >= 0 && all[i].ID != before {
			i--
		}
		if i < 0 {
			return nil, false, fmt.Errorf("%w: %s", ErrNotFound, before)
		}
		i--
	}
	for ; i >= 0 && len(out) < limit; i-- {
		out = append(out, all[i])
	}
	return out, i >= 0, nil
}

// Limits of a diff: the files listed and the bytes of one file's diff.
const (
	maxDiffFiles = 1000
	maxFileDiff  = 256 << 10
	// binarySniff is how much of a file is checked for NUL bytes (git's heuristic).
	binarySniff = 8000
)

// Diff compares checkpoint id with checkpoint against, or with the workspace now when against is
// empty, restricted to scope ("." for everything): what changed from id to the other side.
func (s *Store) Diff(id, against, scope string) (Diff, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.tree(id)
	if err != nil {
		return Diff{}, err
	}
	var to tree
	if against == "" {
		if to, err = s.walk(false); err != nil {
			return Diff{}, err
		}
	} else if to, err = s.tree(against); err != nil {
		return Diff{}, err
	}
	paths := changedFiles(from, to, scope)
	var d Diff
	if len(paths) > maxDiffFiles {
		paths, d.Truncated = paths[:maxDiffFiles], true
	}
	for _, p := range paths {
		a, inA := from[p]
		b, inB := to[p]
		fd := FileDiff{Path: p, Status: "modified"}
		switch {
		case !inA || a.isDir():
			fd.Status = "added"
		case !inB || b.isDir():
			fd.Status = "deleted"
		}
		var old, cur []byte
		if inA && !a.isDir() {
			if old, err = s.object(a.Hash); err != nil {
				return Diff{}, err
			}
		}
		if inB && !b.isDir() {
			if against == "" && !b.isLink() {
				cur, err = s.readWorkspace(p)
			} else {
				cur, err = s.object(b.Hash)
			}
			if err != nil {
				return Diff{}, err
			}
		}
		if binary(old) || binary(cur) {
			fd.Binary = true
		} else {
			fd.Diff = unified(p, fd.Status, old, cur)
			if len(fd.Diff) > maxFileDiff {
				fd.Diff, fd.Truncated = fd.Diff[:maxFileDiff], true
			}
		}
		d.Files = append(d.Files, fd)
	}
	return d, nil
}

// Restore puts the workspace (or only scope, a file or directory) back as it was in checkpoint
// id. The current state is checkpointed first (kind before_restore) and returned: restoring it
// undoes this restore. changed counts the paths written or deleted.
func (s *Store) Restore(id, scope string) (before Meta, changed int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Pruning waits until the restore is done: the checkpoint restored may be the oldest, which
	// the "before_restore" one pushes out, and its objects are read below.
	defer s.maintain()
	target, err := s.tree(id)
	if err != nil {
		return Meta{}, 0, err
	}
	if scope != "." {
		if _, ok := target[scope]; !ok {
			if err := s.load(); err != nil {
				return Meta{}, 0, err
			}
			// A path in neither the checkpoint nor the workspace is a mistake, not a no-op.
			if cur, err := s.walk(false); err != nil {
				return Meta{}, 0, err
			} else if !inScope(cur, scope) && !inScope(target, scope) {
				return Meta{}, 0, fmt.Errorf("%w: %s is in neither the checkpoint nor the workspace", ErrNoPath, scope)
			}
		}
	}
	before, _, err = s.create(Meta{Kind: KindBeforeRestore, Message: "before restoring " + id})
	if err != nil {
		return Meta{}, 0, err
	}
	cur := s.headTree
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return Meta{}, 0, err
	}
	defer root.Close()
	// Deletions first, deepest first (a file before its directory); then directories, shallowest
	// first; then files and links.
	var gone []string
	for p, e := range cur {
		if within(p, scope) {
			if t, ok := target[p]; !ok || t.isDir() != e.isDir() {
				gone = append(gone, p)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(gone)))
	for _, p := range gone {
		if err := root.RemoveAll(p); err != nil {
			return before, changed, fmt.Errorf("restore: remove %s: %w", p, err)
		}
		changed++
	}
	var want []string
	for p, e := range target {
		if within(p, scope) {
			if c, ok := cur[p]; !ok || !c.same(e) || c.isDir() != e.isDir() {
				want = append(want, p)
			}
		}
	}
	sort.Strings(want)
	for _, p := range want {
		if err := s.put(root, p, target[p]); err != nil {
			return before, changed, fmt.Errorf("restore %s: %w", p, err)
		}
		changed++
	}
	return before, changed, nil
}

// put writes one entry of a tree into the workspace.
func (s *Store) put(root *os.Root, p string, e entry) error {
	if dir := path.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if e.isDir() {
		if err := root.Mkdir(p, e.Mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return root.Chmod(p, e.Mode.Perm())
	}
	content, err := s.object(e.Hash)
	if err != nil {
		return err
	}
	// A symlink or a file in the way (of another kind, or one the writes below must not follow).
	if fi, err := root.Lstat(p); err == nil && (fi.Mode()&fs.ModeSymlink != 0 || fi.IsDir()) {
		if err := root.RemoveAll(p); err != nil {
			return err
		}
	}
	if e.isLink() {
		_ = root.Remove(p)
		return root.Symlink(string(content), p)
	}
	// Written beside and renamed over, so a dev server watching the file never reads half of it.
	tmp := path.Join(path.Dir(p), ".mgx-restore-"+path.Base(p))
	if err := root.WriteFile(tmp, content, e.Mode.Perm()); err != nil {
		return err
	}
	if err := root.Chmod(tmp, e.Mode.Perm()); err != nil {
		_ = root.Remove(tmp)
		return err
	}
	if err := root.Rename(tmp, p); err != nil {
		_ = root.Remove(tmp)
		return err
	}
	return nil
}

// walk reads the workspace's tree. With store, every file's content not yet in the history is
// added to it (a snapshot); without, contents are only hashed (a comparison with now).
func (s *Store) walk(store bool) (tree, error) {
	if s.index == nil {
		s.loadIndex()
	}
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	t := tree{}
	seen := make(map[string]indexEntry, len(s.index))
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // vanished or unreadable while walking: not part of this snapshot
		}
		if p == "." {
			return nil
		}
		if d.IsDir() && s.opts.Exclude(d.Name()) {
			return fs.SkipDir
		}
		if strings.HasPrefix(d.Name(), ".mgx-restore-") {
			return nil // a restore's file in flight
		}
		fi, err := d.Info()
		if err != nil {
			return nil //nolint:nilerr // gone since the walk listed it (a build deleting it): not in this checkpoint
		}
		switch {
		case fi.IsDir():
			t[p] = entry{Mode: fs.ModeDir | fi.Mode().Perm()}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(p)
			if err != nil {
				return nil //nolint:nilerr // as above
			}
			h, err := s.putObject(strings.NewReader(target), store)
			if err != nil {
				return err
			}
			t[p] = entry{Hash: h, Mode: fs.ModeSymlink | 0o777, Size: int64(len(target))}
		case fi.Mode().IsRegular():
			key := statKey(fi)
			if old, ok := s.index[p]; ok && old.sameStat(key) && (!store || s.hasObject(old.Hash)) {
				key.Hash = old.Hash
			} else {
				f, err := root.Open(p)
				if err != nil {
					return nil //nolint:nilerr // as above
				}
				key.Hash, err = s.putObject(f, store)
				f.Close()
				if err != nil {
					return err
				}
			}
			seen[p] = key
			t[p] = entry{Hash: key.Hash, Mode: fi.Mode().Perm(), Size: fi.Size()}
		}
		// Sockets, FIFOs and devices are not content: left out.
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.index = seen
	return t, nil
}

func statKey(fi fs.FileInfo) indexEntry {
	k := indexEntry{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Ino = st.Ino
		k.CTime = st.Ctim.Nano()
	}
	return k
}

// sameStat: an unchanged size, mtime, ctime and inode mean unchanged content (git's rule; ctime
// catches a write that reset the mtime).
func (e indexEntry) sameStat(o indexEntry) bool {
	return e.Size == o.Size && e.MTime == o.MTime && e.CTime == o.CTime && e.Ino == o.Ino
}

func (s *Store) objectPath(h string) string { return filepath.Join(s.dir, "objects", h[:2], h[2:]) }

func (s *Store) hasObject(h string) bool {
	_, err := os.Stat(s.objectPath(h))
	return err == nil
}

// putObject hashes r and, with store, keeps its content as an object (once per content).
func (s *Store) putObject(r io.Reader, store bool) (string, error) {
	h := sha256.New()
	if !store {
		if _, err := io.Copy(h, r); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "obj-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := s.objectPath(sum)
	if _, err := os.Stat(dst); err == nil {
		return sum, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return sum, nil
}

func (s *Store) object(h string) ([]byte, error) {
	b, err := os.ReadFile(s.objectPath(h))
	if err != nil {
		return nil, fmt.Errorf("checkpoint history is damaged (object %s): %w", h, err)
	}
	return b, nil
}

func (s *Store) readWorkspace(p string) ([]byte, error) {
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	b, err := root.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // deleted since the walk
	}
	return b, err
}

// logName is the log of the checkpoints, oldest first.
const logName = "log.jsonl"

func (s *Store) treePath(id string) string { return filepath.Join(s.dir, "trees", id+".json") }

// tree loads checkpoint id's tree.
func (s *Store) tree(id string) (tree, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a checkpoint id", ErrInvalid, id)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if id == s.head.ID {
		return s.headTree, nil
	}
	// Until a collection ran, trees may remain of checkpoints a crash interrupted or a prune
	// dropped: only the log says which are checkpoints.
	if s.dirty {
		all, err := s.readLog()
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(all, func(m Meta) bool { return m.ID == id }) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
	}
	return s.readTree(id)
}

func (s *Store) readTree(id string) (tree, error) {
	b, err := os.ReadFile(s.treePath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var t tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	return t, nil
}

// load reads the latest checkpoint once.
func (s *Store) load() error {
	if s.loaded {
		return nil
	}
	all, err := s.readLog()
	if err != nil {
		return err
	}
	s.headTree = tree{}
	s.count = len(all)
	s.dirty = s.dirty || s.leftovers(len(all))
	if len(all) > 0 {
		s.head = all[len(all)-1]
		if s.headTree, err = s.readTree(s.head.ID); err != nil {
			return err
		}
	}
	s.loaded = true
	return nil
}

func (s *Store) readLog() ([]Meta, error) {
	f, err := os.Open(filepath.Join(s.dir, logName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Meta
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m Meta
		// A line torn by a crash is the last one, of a checkpoint that never completed: skipped.
		if json.Unmarshal(sc.Bytes(), &m) == nil && ValidID(m.ID) {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

func (s *Store) appendLog(m Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, logName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// A torn previous line must not swallow this one.
	if _, err := f.Write(append(append([]byte{'\n'}, b...), '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// The index is a cache: lost or stale, it only costs reading files again.
func (s *Store) loadIndex() {
	s.index = map[string]indexEntry{}
	if b, err := os.ReadFile(filepath.Join(s.dir, "index.json")); err == nil {
		_ = json.Unmarshal(b, &s.index)
	}
}

func (s *Store) saveIndex() {
	b, err := json.Marshal(s.index)
	if err == nil {
		tmp := filepath.Join(s.dir, "tmp", "index.json")
		if os.WriteFile(tmp, b, 0o600) == nil {
			_ = os.Rename(tmp, filepath.Join(s.dir, "index.json"))
		}
	}
}

func sameTree(a, b tree) bool {
	if len(a) != len(b) {
		return false
	}
	for p, e := range a {
		if o, ok := b[p]; !ok || !o.same(e) {
			return false
		}
	}
	return true
}

// within reports whether p is scope or lies under it.
func within(p, scope string) bool {
	return scope == "." || p == scope || strings.HasPrefix(p, scope+"/")
}

func inScope(t tree, scope string) bool {
	for p := range t {
		if within(p, scope) {
			return true
		}
	}
	return false
}

// changedFiles lists, sorted, the non-directory paths within scope that differ between a and b.
func changedFiles(a, b tree, scope string) []string {
	if scope == "" {
		scope = "."
	}
	var out []string
	for p, e := range a {
		if !within(p, scope) || e.isDir() {
			continue
		}
		if o, ok := b[p]; !ok || !o.same(e) {
			out = append(out, p)
		}
	}
	for p, e := range b {
		if !within(p, scope) || e.isDir() {
			continue
		}
		if o, ok := a[p]; !ok || o.isDir() {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func binary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), binarySniff)], 0) >= 0
}
