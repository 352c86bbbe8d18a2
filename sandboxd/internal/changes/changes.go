// Package changes records what changed in a workspace tree, so that a caller holding a cursor can ask
// "what changed since N": agentd announces file_change events for edits made by shell commands and dev
// tools this way, and workspace checkpoints can snapshot only what changed.
//
// Two sources feed one journal. The default is inotify: a watch on every directory of the tree (except
// the heavy ones named by Options.Skip — dependencies, VCS data, build output — which are reported as
// themselves but never descended), read as events arrive and again, synchronously, before every query,
// so a query sees every change a process made before the query was sent. When inotify is unavailable
// (the per-user instance or watch limits are shared by every sandbox of a host and run out) the
// tracker scans instead: it walks the tree on each query and diffs size, mtime and inode against the
// previous walk. Both coalesce per path: a journal entry holds a path's latest kind and the sequence
// number of its latest change, so a file written a thousand times is one entry.
package changes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Kinds of change.
const (
	Created  = "created"
	Modified = "modified"
	Deleted  = "deleted"
)

// Modes of a tracker.
const (
	ModeInotify = "inotify"
	ModeScan    = "scan"
)

// Change is one path's latest change after a cursor.
type Change struct {
	// Path is relative to the root, slash-separated.
	Path string `json:"path"`
	Kind string `json:"kind"`
	Dir  bool   `json:"dir,omitempty"`
	// Seq orders changes; the journal's cursor after this change is Seq.
	Seq uint64 `json:"seq"`
}

// Cursor is a position in a tracker's journal. Epoch names the tracker instance: a cursor of another
// epoch (the agent restarted) cannot be served exactly.
type Cursor struct {
	Epoch string
	Seq   uint64
}

// String encodes the cursor as "epoch:seq".
func (c Cursor) String() string {
	if c.Epoch == "" {
		return ""
	}
	return c.Epoch + ":" + strconv.FormatUint(c.Seq, 10)
}

// ParseCursor decodes String's form; "" is the zero cursor (no position: the caller only wants the
// current one).
func ParseCursor(s string) (Cursor, bool) {
	if s == "" {
		return Cursor{}, true
	}
	e, n, ok := strings.Cut(s, ":")
	if !ok || e == "" {
		return Cursor{}, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return Cursor{}, false
	}
	return Cursor{Epoch: e, Seq: seq}, true
}

// Result answers a query.
type Result struct {
	// Cursor is where the caller continues from: after the last change returned.
	Cursor Cursor
	// Changes after the asked cursor, oldest first, at most the asked limit.
	Changes []Change
	// Reset says the asked cursor could not be served exactly — it is of another epoch, older than
	// what the journal keeps, or events were lost — so anything may have changed. A zero cursor asks
	// for no history and is never a reset.
	Reset bool
	// Truncated says more changes follow; ask again from Cursor.
	Truncated bool
	// Mode is ModeInotify or ModeScan.
	Mode string
}

// Options configure a tracker.
type Options struct {
	// Root is the directory tracked.
	Root string
	// Skip reports directory names that are reported as a whole and never descended.
	Skip func(name string) bool
	// MaxEntries bounds the journal: beyond it the oldest entries are dropped and older cursors
	// reset. 0 means 20000.
	MaxEntries int
	// MaxScan bounds the entries one scan walks (scan mode). 0 means 200000.
	MaxScan int
	// ForceScan uses scan mode even where inotify works (tests, benchmarks).
	ForceScan bool
	Logger    *slog.Logger
}

// entry is the journal's record of one path: whether it exists now, the change that created its
// current (or last) incarnation, and its latest change. What a caller is told follows from its cursor.
type entry struct {
	exists bool
	dir    bool
	born   uint64 // 0: it existed before the journal knew of it
	seq    uint64
}

// source feeds the journal.
type source interface {
	// sync records every change made before it was called; an error means the source broke and
	// the tracker must fall back.
	sync() error
	close()
}

// Tracker is a running journal of changes under a root. It is safe for concurrent use.
type Tracker struct {
	opts  Options
	epoch string

	mu      sync.Mutex
	seq     uint64
	horizon uint64 // cursors below it may have missed changes
	entries map[string]*entry
	changed chan struct{} // closed and replaced on every change
	mode    string
	src     source
	closed  bool
}

// Start begins tracking opts.Root: with inotify when it works, by scanning otherwise. It fails only
// when the root cannot be read at all.
func Start(opts Options) (*Tracker, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 20000
	}
	if opts.MaxScan <= 0 {
		opts.MaxScan = 200000
	}
	if opts.Skip == nil {
		opts.Skip = func(string) bool { return false }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	t := &Tracker{opts: opts, epoch: hex.EncodeToString(b[:]), entries: map[string]*entry{}, changed: make(chan struct{})}
	if !opts.ForceScan {
		w, err := startInotify(t)
		if err == nil {
			t.mode, t.src = ModeInotify, w
			return t, nil
		}
		opts.Logger.Warn("workspace changes: inotify unavailable, scanning on demand instead", "err", err)
	}
	s, err := startScan(t)
	if err != nil {
		return nil, err
	}
	t.mode, t.src = ModeScan, s
	return t, nil
}

// Mode is ModeInotify or ModeScan.
func (t *Tracker) Mode() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mode
}

// Close stops tracking.
func (t *Tracker) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	src := t.src
	t.mu.Unlock()
	src.close()
}

// fallBack switches a failing inotify source to scanning; every older cursor resets, since events
// may have been lost on the way.
func (t *Tracker) fallBack(why error) {
	t.mu.Lock()
	if t.mode == ModeScan || t.closed {
		t.mu.Unlock()
		return
	}
	old := t.src
	t.mode = ModeScan
	t.mu.Unlock()
	t.opts.Logger.Warn("workspace changes: inotify failed, scanning on demand instead", "err", why)
	old.close()
	s, err := startScan(t)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.opts.Logger.Error("workspace changes: scan failed", "err", err)
		s = &scanner{t: t, broken: true}
	}
	t.src = s
	t.seq++
	t.horizon = t.seq
}

// syncSource brings the journal up to date, falling back to scanning when inotify broke.
func (t *Tracker) syncSource() {
	t.mu.Lock()
	src := t.src
	t.mu.Unlock()
	if err := src.sync(); err != nil {
		t.fallBack(err)
		t.mu.Lock()
		src = t.src
		t.mu.Unlock()
		_ = src.sync()
	}
}

// record adds a change of rel, seen by the source: Created (a path that did not exist now does),
// Modified (changed or replaced in place) or Deleted. Callers hold t.mu.
func (t *Tracker) record(rel, kind string, dir bool) {
	if rel == "" || rel == "." {
		return
	}
	t.seq++
	e, ok := t.entries[rel]
	if !ok {
		e = &entry{}
		t.entries[rel] = e
	}
	switch kind {
	case Created:
		e.exists, e.born = true, t.seq
	case Modified:
		e.exists = true
	case Deleted:
		e.exists = false
		if dir {
			t.goneBelow(rel)
		}
	}
	e.dir, e.seq = dir, t.seq
	if len(t.entries) > t.opts.MaxEntries {
		t.evict()
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// goneBelow marks what the journal knows below a removed directory as gone too, without a change of
// its own: whoever saw those paths is told by the directory's deletion, and whoever did not never
// hears of them.
func (t *Tracker) goneBelow(dir string) {
	prefix := dir + "/"
	for p, e := range t.entries {
		if strings.HasPrefix(p, prefix) {
			e.exists = false
		}
	}
}

// evict drops the older half of the journal.
func (t *Tracker) evict() {
	seqs := make([]uint64, 0, len(t.entries))
	for _, e := range t.entries {
		seqs = append(seqs, e.seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	cut := seqs[len(seqs)/2]
	for p, e := range t.entries {
		if e.seq <= cut {
			delete(t.entries, p)
		}
	}
	t.horizon = max(t.horizon, cut)
}

// resetAll marks every older cursor as reset (events were lost).
func (t *Tracker) resetAll() {
	t.seq++
	t.horizon = t.seq
	close(t.changed)
	t.changed = make(chan struct{})
}

// Since returns the changes after c, at most limit (0 means 1000). A zero cursor returns none, only
// the current position.
func (t *Tracker) Since(c Cursor, limit int) Result {
	t.syncSource()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sinceLocked(c, limit)
}

func (t *Tracker) sinceLocked(c Cursor, limit int) Result {
	if limit <= 0 {
		limit = 1000
	}
	res := Result{Cursor: Cursor{Epoch: t.epoch, Seq: t.seq}, Mode: t.mode}
	if c.Epoch == "" {
		return res
	}
	after := c.Seq
	if c.Epoch != t.epoch || c.Seq > t.seq {
		res.Reset = true
		return res
	}
	if after < t.horizon {
		res.Reset = true
	}
	for p, e := range t.entries {
		if e.seq <= after {
			continue
		}
		c := Change{Path: p, Dir: e.dir, Seq: e.seq}
		switch {
		case !e.exists && e.born > after:
			continue // created and gone again since the cursor: never there for this caller
		case !e.exists:
			c.Kind = Deleted
		case e.born > after:
			c.Kind = Created
		default:
			c.Kind = Modified
		}
		res.Changes = append(res.Changes, c)
	}
	sort.Slice(res.Changes, func(i, j int) bool { return res.Changes[i].Seq < res.Changes[j].Seq })
	if len(res.Changes) > limit {
		res.Changes = res.Changes[:limit]
		res.Truncated = true
		res.Cursor.Seq = res.Changes[limit-1].Seq
	}
	return res
}

// Wait is Since, but when nothing changed after c it waits for a change until ctx ends.
func (t *Tracker) Wait(ctx context.Context, c Cursor, limit int) Result {
	for {
		t.syncSource()
		t.mu.Lock()
		scanning := t.mode == ModeScan
		res := t.sinceLocked(c, limit)
		wake := t.changed
		t.mu.Unlock()
		if len(res.Changes) > 0 || res.Reset || c.Epoch == "" {
			return res
		}
		var poll <-chan struct{}
		if scanning {
			// Nothing pushes changes in scan mode: look again shortly.
			poll = afterScanInterval()
		}
		select {
		case <-ctx.Done():
			return res
		case <-wake:
		case <-poll:
		}
	}
}

// relJoin joins a directory relative to the root and a name.
func relJoin(dir, name string) string {
	if dir == "" || dir == "." {
		return name
	}
	return dir + "/" + name
}

// skipDir reports whether a directory at rel is reported but not descended.
func (t *Tracker) skipDir(name string) bool { return t.opts.Skip(name) }
