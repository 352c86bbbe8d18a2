// Package checkpoint keeps a private history of a workspace: snapshots of the whole tree (heavy
// folders such as node_modules excepted), which can be listed, diffed and restored. The history lives
// in a directory outside the workspace (the workspace's meta volume), so nothing the user runs in the
// workspace sees, packs or commits it, and the user's own .git is never touched.
//
// The layout is git's idea without git (the sandbox image may have none, and a busybox one has
// none): content-addressed objects (objects/ab/cdef…, sha256 of the content), one tree file per
// checkpoint (trees/<id>.json: path → object, mode, size), and an append-only log of the
// checkpoints' metadata (log.jsonl, newest last). An index (index.json: path → size, mtime, inode,
// object) plays git's index role: a file whose stat did not change is not read again, so a snapshot
// of an unchanged 2,000-file project costs 2,000 lstat calls.
//
// The history is bounded: past Options.Keep checkpoints the oldest are dropped from the log and
// their trees removed, and a garbage collection (gc.go) then deletes the objects no remaining tree
// or the index names, with what an interrupted checkpoint left behind.
package checkpoint

import (
	"errors"
	"io/fs"
	"time"
)

// Kinds of checkpoints.
const (
	KindStep          = "step"           // after an agent step that changed files
	KindManual        = "manual"         // asked for through the API
	KindBeforeRestore = "before_restore" // the state a restore replaced
)

// ErrNotFound means no such checkpoint.
var ErrNotFound = errors.New("checkpoint not found")

// ErrNoPath means a path restore named a path in neither the checkpoint nor the workspace.
var ErrNoPath = errors.New("no such path")

// ErrInvalid means a malformed id or path.
var ErrInvalid = errors.New("invalid checkpoint request")

// Meta describes a checkpoint.
type Meta struct {
	ID           string    `json:"id"`
	Parent       string    `json:"parent,omitempty"`
	Created      time.Time `json:"created"`
	Agent        string    `json:"agent,omitempty"`
	RunID        string    `json:"run_id,omitempty"`
	Step         string    `json:"step,omitempty"`
	Message      string    `json:"message,omitempty"`
	Kind         string    `json:"kind"`
	FilesChanged int       `json:"files_changed"`
}

// entry is one path of a tree. Directories are entries too, so an empty directory is restored.
type entry struct {
	// Hash is the object of a file's content or a symlink's target; empty for a directory.
	Hash string      `json:"h,omitempty"`
	Mode fs.FileMode `json:"m"`
	Size int64       `json:"s,omitempty"`
}

func (e entry) isDir() bool  { return e.Mode.IsDir() }
func (e entry) isLink() bool { return e.Mode&fs.ModeSymlink != 0 }

// same reports whether two entries hold the same thing (permission bits included).
func (e entry) same(o entry) bool { return e.Hash == o.Hash && e.Mode == o.Mode }

// tree maps slash-separated paths relative to the workspace to their entries.
type tree map[string]entry

// FileDiff is what changed in one file from one side to the other.
type FileDiff struct {
	Path string `json:"path"`
	// Status is "added", "modified" or "deleted".
	Status string `json:"status"`
	// Diff is a unified diff (empty for a binary file).
	Diff      string `json:"diff,omitempty"`
	Binary    bool   `json:"binary,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Diff is the answer of Store.Diff.
type Diff struct {
	Files []FileDiff `json:"files"`
	// Truncated: more files differ than were returned.
	Truncated bool `json:"truncated,omitempty"`
}

// Options tune a Store.
type Options struct {
	// Exclude reports whether a directory name is skipped wherever it appears (node_modules, build
	// output). Nil: nothing is.
	Exclude func(name string) bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Keep is how many checkpoints the history holds: once a tenth more have gathered, the oldest
	// beyond Keep are dropped (0: DefaultKeep).
	Keep int
}

// DefaultKeep is the history's length when Options.Keep is not set.
const DefaultKeep = 500
