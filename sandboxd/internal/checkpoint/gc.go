package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mgx-ai/mgx/sandboxd/internal/durable"
)

// The history is bounded by pruning and garbage collection, both under the store's lock like every
// other operation, so a collection never runs while a checkpoint is written: the objects of a
// checkpoint being made are always named by a tree in the log or the index by the time the lock is
// released (or, if it failed, are garbage).
//
// Pruning rewrites the log without the oldest checkpoints (a synced temporary file renamed over
// it: a crash leaves the old log or the new one, never neither) and then removes their trees. A
// crash between the two leaves trees the log no longer names; the next collection removes them,
// and until then they are not checkpoints (while a collection is due, Restore and Diff check the
// log).
//
// A collection reads every remaining tree, so it is amortised: it runs once a tenth of the history
// has been pruned (every 50 checkpoints at the default length), and whenever a checkpoint failed
// half-way or a crash left leftovers.

// GCStats says what a collection removed.
type GCStats struct {
	Objects, Trees, Temporaries int
}

// GC collects the history's garbage now: the objects no tree of the log and no index entry names,
// the trees of no checkpoint, and the temporary files of interrupted writes.
func (s *Store) GC() (GCStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return GCStats{}, err
	}
	return s.gc()
}

// maintain prunes the history to its length (once it is a tenth past it) and collects when due. Its failures (a full volume) do
// not fail the checkpoint already made: they leave the history a little longer, and the next
// checkpoint tries again.
func (s *Store) maintain() {
	if !s.loaded {
		return
	}
	// Pruned in batches: the log is rewritten (and synced) once a tenth of KEEP has gathered past
	// it, not on every checkpoint past KEEP.
	if s.count > s.opts.Keep+s.opts.Keep/10 {
		if err := s.prune(); err != nil {
			return
		}
	}
	if s.dirty || s.dropped >= max(1, s.opts.Keep/10) {
		_, _ = s.gc()
	}
}

// prune drops the checkpoints beyond the history's length, oldest first.
func (s *Store) prune() error {
	all, err := s.readLog()
	if err != nil {
		return err
	}
	if len(all) <= s.opts.Keep {
		s.count = len(all)
		return nil
	}
	gone, kept := all[:len(all)-s.opts.Keep], all[len(all)-s.opts.Keep:]
	// The oldest kept checkpoint's predecessor no longer exists: it becomes the first, so a client
	// diffing a checkpoint against its parent never asks for a dropped one.
	kept[0].Parent = ""
	var buf bytes.Buffer
	for _, m := range kept {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := durable.WriteFile(s.dir, logName, buf.Bytes()); err != nil {
		return err
	}
	s.count = len(kept)
	if s.head.ID == kept[0].ID {
		s.head.Parent = ""
	}
	for _, m := range gone {
		if err := os.Remove(s.treePath(m.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.dirty = true // the collection removes it
		}
	}
	s.dropped += len(gone)
	return nil
}

// gc marks what the log's trees and the index name and sweeps the rest. A tree that cannot be read
// stops it: sweeping with an incomplete mark would delete live objects.
func (s *Store) gc() (GCStats, error) {
	var st GCStats
	all, err := s.readLog()
	if err != nil {
		return st, err
	}
	live := make(map[string]bool, len(all))
	marked := map[[sha256.Size]byte]bool{}
	mark := func(h string) {
		var k [sha256.Size]byte
		if n, err := hex.Decode(k[:], []byte(h)); err == nil && n == len(k) {
			marked[k] = true
		}
	}
	for _, m := range all {
		live[m.ID+".json"] = true
		b, err := os.ReadFile(s.treePath(m.ID))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a damaged checkpoint names nothing that can be kept for it
		}
		if err != nil {
			return st, err
		}
		if err := treeObjects(b, marked); err != nil {
			return st, fmt.Errorf("checkpoint %s: %w", m.ID, err)
		}
	}
	if s.index == nil {
		s.loadIndex()
	}
	for _, e := range s.index {
		mark(e.Hash)
	}
	for _, e := range s.headTree {
		mark(e.Hash)
	}

	// Trees of no checkpoint (pruned before a crash, or written by a checkpoint that never reached
	// the log) and durable.WriteFile's temporaries beside them.
	trees, err := os.ReadDir(filepath.Join(s.dir, "trees"))
	if err != nil {
		return st, err
	}
	for _, d := range trees {
		if !live[d.Name()] && os.Remove(filepath.Join(s.dir, "trees", d.Name())) == nil {
			st.Trees++
		}
	}
	shards, err := os.ReadDir(filepath.Join(s.dir, "objects"))
	if err != nil {
		return st, err
	}
	for _, shard := range shards {
		dir := filepath.Join(s.dir, "objects", shard.Name())
		objs, err := os.ReadDir(dir)
		if err != nil {
			return st, err
		}
		for _, o := range objs {
			var k [sha256.Size]byte
			n, err := hex.Decode(k[:], []byte(shard.Name()+o.Name()))
			if (err != nil || n != len(k) || !marked[k]) && os.Remove(filepath.Join(dir, o.Name())) == nil {
				st.Objects++
			}
		}
	}
	// Nothing writes in tmp/ outside the lock: whatever is there was interrupted.
	tmps, err := os.ReadDir(filepath.Join(s.dir, "tmp"))
	if err != nil {
		return st, err
	}
	for _, d := range tmps {
		if os.RemoveAll(filepath.Join(s.dir, "tmp", d.Name())) == nil {
			st.Temporaries++
		}
	}
	if tops, err := os.ReadDir(s.dir); err == nil {
		for _, d := range tops {
			if strings.HasPrefix(d.Name(), "."+logName+".") && os.Remove(filepath.Join(s.dir, d.Name())) == nil {
				st.Temporaries++
			}
		}
	}
	s.dropped, s.dirty = 0, false
	return st, nil
}

// leftovers reports, cheaply, whether a crash left something to collect: a checkpoint in progress,
// a temporary file, or trees the log does not name.
func (s *Store) leftovers(checkpoints int) bool {
	if tmps, err := os.ReadDir(filepath.Join(s.dir, "tmp")); err != nil || len(tmps) > 0 {
		return true
	}
	trees, err := os.ReadDir(filepath.Join(s.dir, "trees"))
	return err != nil || len(trees) != checkpoints
}

// hashKey is how Go's encoding/json writes an entry's object (entry.Hash): a JSON string's quotes
// inside a path are escaped, so this sequence only ever opens the "h" member of an entry.
var hashKey = []byte(`"h":"`)

// treeObjects marks the objects a tree file names. It scans the file instead of decoding it: a
// collection reads every tree of the history (a million entries for 500 checkpoints of a
// 2,000-file project), and decoding them into maps costs seconds where this costs milliseconds.
func treeObjects(b []byte, marked map[[sha256.Size]byte]bool) error {
	// Trees are written whole (durable.WriteFile), so this only catches a file damaged otherwise;
	// validating the JSON would cost most of the collection.
	if b = bytes.TrimSpace(b); len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return errors.New("tree is damaged")
	}
	for {
		i := bytes.Index(b, hashKey)
		if i < 0 {
			return nil
		}
		b = b[i+len(hashKey):]
		var k [sha256.Size]byte
		if len(b) < 2*sha256.Size+1 || b[2*sha256.Size] != '"' {
			return errors.New("tree names a malformed object")
		}
		if _, err := hex.Decode(k[:], b[:2*sha256.Size]); err != nil {
			return fmt.Errorf("tree names a malformed object: %w", err)
		}
		marked[k] = true
		b = b[2*sha256.Size:]
	}
}
