package agentapi

import (
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/checkpoint"
)

// Paths of the workspace endpoints the agents' tools use beside the file API.
const (
	// PathChanges answers "what changed since this cursor" (GET, ?cursor=&wait_ms=&limit=).
	PathChanges = "/v1/changes"
	// PathSearch searches file contents (POST SearchRequest).
	PathSearch = "/v1/files/search"
)

// HeaderLogOffset is the header of a process log response naming the offset its body starts at
// (not the one asked for when ?tail= moved it).
const HeaderLogOffset = "X-Log-Offset"

// Changes is the body of GET /v1/changes.
type Changes struct {
	// Cursor is opaque: pass it back to get what changed after this answer.
	Cursor  string   `json:"cursor"`
	Changes []Change `json:"changes,omitempty"`
	// Reset: the cursor asked for could not be served exactly (the agent restarted, the journal
	// dropped older changes, or events were lost): anything may have changed.
	Reset bool `json:"reset,omitempty"`
	// Truncated: more changes follow; ask again from Cursor.
	Truncated bool `json:"truncated,omitempty"`
	// Mode is "inotify" or "scan" (the fallback when inotify is unavailable).
	Mode string `json:"mode"`
}

// Change is one path's latest change after the cursor.
type Change struct {
	Path string `json:"path"`
	// Kind is "created", "modified" or "deleted".
	Kind string `json:"kind"`
	Dir  bool   `json:"dir,omitempty"`
}

// SearchRequest is the body of POST /v1/files/search.
type SearchRequest struct {
	// Root is the directory (or file) searched, relative to the workspace, already cleaned.
	Root string `json:"root"`
	// Pattern is a regular expression (RE2 syntax) matched against each line.
	Pattern    string `json:"pattern"`
	IgnoreCase bool   `json:"ignore_case,omitempty"`
	// Glob restricts the files searched: a name pattern ("*.tsx") or, with a slash, a pattern of the
	// path below Root ("src/**/*.ts"); "**" matches any number of directories.
	Glob string `json:"glob,omitempty"`
	// Prune names directories never descended (dependencies, build output).
	Prune         []string `json:"prune,omitempty"`
	IncludeHidden bool     `json:"include_hidden,omitempty"`
	// MaxMatches bounds the matches returned (0: 500); MaxLine bounds a match's text (0: 400 bytes).
	MaxMatches int `json:"max_matches,omitempty"`
	MaxLine    int `json:"max_line,omitempty"`
}

// SearchMatch is one matching line.
type SearchMatch struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Text string `json:"text"`
	// Cut is set when Text was shortened to MaxLine.
	Cut bool `json:"cut,omitempty"`
}

// SearchResult is the answer to POST /v1/files/search.
type SearchResult struct {
	Matches []SearchMatch `json:"matches"`
	// Truncated: the search stopped at MaxMatches (or its time budget); more matches exist.
	Truncated bool `json:"truncated,omitempty"`
	// FilesSearched counts the files read; FilesSkipped the binary or oversized ones left out.
	FilesSearched int `json:"files_searched"`
	FilesSkipped  int `json:"files_skipped"`
}

// Paths of the workspace's own state, kept in the agent's meta directory (the meta volume, beside
// the workspace and never inside it).
const (
	// PathMarker reads (GET) or writes (PUT Marker) the workspace's marker.
	PathMarker = "/v1/workspace/marker"
	// PathSync flushes the workspace's and the meta directory's file systems to stable storage (POST).
	PathSync = "/v1/workspace/sync"
	// PathUsage measures the workspace (GET).
	PathUsage = "/v1/workspace/usage"
)

// Marker says whose a workspace is. sandboxd writes it when a workspace is first given to a session
// and checks it whenever the workspace is mounted again, so a volume that is not the session's (lost
// and re-created empty, swapped, another deployment's) is reported instead of used. The agent only
// ever replaces a marker with one of the same ID, and never one naming another session.
type Marker struct {
	// ID is the workspace id, which names both its volumes.
	ID        string    `json:"id"`
	SessionID string    `json:"session_id,omitempty"`
	OwnerID   string    `json:"owner_id,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Created   time.Time `json:"created"`
}

// Usage is the answer to GET /v1/workspace/usage.
type Usage struct {
	// Bytes is what the workspace's files take on disk (allocated blocks, as du counts), Files how
	// many entries it holds.
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
	// MetaBytes is what the workspace's own state (marker, checkpoint history) takes.
	MetaBytes int64 `json:"meta_bytes"`
	// Partial: the walk stopped at its time budget; the numbers are lower bounds.
	Partial bool `json:"partial,omitempty"`
}

// Paths of the workspace's checkpoints (its private history in the meta directory).
const (
	// PathCheckpoints lists (GET ?limit=&before=) or creates (POST CheckpointRequest) checkpoints.
	PathCheckpoints = "/v1/checkpoints"
	// PathCheckpointDiff compares a checkpoint with another or with now (POST CheckpointDiffRequest).
	PathCheckpointDiff = "/v1/checkpoints/diff"
	// PathCheckpointRestore restores a checkpoint, or one path of it (POST CheckpointRestoreRequest).
	PathCheckpointRestore = "/v1/checkpoints/restore"
)

// Checkpoint describes one checkpoint: the history's own type is the wire type.
type Checkpoint = checkpoint.Meta

// CheckpointRequest asks for a snapshot. Exclude names the directories skipped wherever they
// appear (sandboxd's configured list, sent with every call that walks the workspace; an empty list
// skips nothing). Keep is the history's length, sent likewise with every call that makes a
// checkpoint (0: the length in force).
type CheckpointRequest struct {
	Kind    string   `json:"kind,omitempty"`
	Message string   `json:"message,omitempty"`
	Agent   string   `json:"agent,omitempty"`
	RunID   string   `json:"run_id,omitempty"`
	Step    string   `json:"step,omitempty"`
	Exclude []string `json:"exclude"`
	Keep    int      `json:"keep,omitempty"`
}

// CheckpointResult is the answer to a CheckpointRequest; Created is false when nothing changed since
// the latest checkpoint, which is returned.
type CheckpointResult struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	Created    bool       `json:"created"`
}

// CheckpointList is the answer to GET PathCheckpoints, newest first.
type CheckpointList struct {
	Checkpoints []Checkpoint `json:"checkpoints"`
	More        bool         `json:"more,omitempty"`
}

// CheckpointDiffRequest compares checkpoint ID with Against ("" = the workspace now), within Path
// (a clean relative path, "." for everything).
type CheckpointDiffRequest struct {
	ID      string   `json:"id"`
	Against string   `json:"against,omitempty"`
	Path    string   `json:"path"`
	Exclude []string `json:"exclude"`
}

// CheckpointDiff is the answer to a CheckpointDiffRequest.
type CheckpointDiff = checkpoint.Diff

// CheckpointRestoreRequest restores checkpoint ID within Path ("." for everything). The restore
// checkpoints the state it replaces, hence Keep.
type CheckpointRestoreRequest struct {
	ID      string   `json:"id"`
	Path    string   `json:"path"`
	Exclude []string `json:"exclude"`
	Keep    int      `json:"keep,omitempty"`
}

// CheckpointRestoreResult says which checkpoint holds the state before the restore.
type CheckpointRestoreResult struct {
	Before       Checkpoint `json:"before"`
	FilesChanged int        `json:"files_changed"`
}
