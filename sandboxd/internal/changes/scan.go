package changes

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// scanInterval is how often a waiting query looks again in scan mode.
const scanInterval = 500 * time.Millisecond

func afterScanInterval() <-chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(scanInterval, func() { close(c) })
	return c
}

// stamp is what a scan compares between walks.
type stamp struct {
	size  int64
	mtime int64
	ino   uint64
	dir   bool
}

// scanner is the fallback source: every sync walks the tree and diffs it against the last walk.
type scanner struct {
	t      *Tracker
	mu     sync.Mutex
	last   map[string]stamp
	broken bool
}

func startScan(t *Tracker) (*scanner, error) {
	s := &scanner{t: t}
	snap, err := s.walk()
	if err != nil {
		return nil, err
	}
	s.last = snap
	return s, nil
}

func (s *scanner) close() {}

func (s *scanner) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return nil
	}
	snap, err := s.walk()
	if err != nil {
		s.t.opts.Logger.Warn("workspace changes: scan failed", "err", err)
		return nil
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	for p, st := range snap {
		old, ok := s.last[p]
		switch {
		case !ok:
			s.t.record(p, Created, st.dir)
		case old.dir != st.dir:
			s.t.record(p, Deleted, old.dir)
			s.t.record(p, Created, st.dir)
		case !st.dir && (old.size != st.size || old.mtime != st.mtime || old.ino != st.ino):
			s.t.record(p, Modified, false)
		}
	}
	for p, old := range s.last {
		if _, ok := snap[p]; ok {
			continue
		}
		// A removed directory stands for everything it held, as inotify reports it.
		if parent := path.Dir(p); parent != "." {
			if _, gone := snap[parent]; !gone && s.last[parent].dir {
				continue
			}
		}
		s.t.record(p, Deleted, old.dir)
	}
	s.last = snap
	return nil
}

var errScanLimit = errors.New("scan limit reached")

// walk stats every entry below the root, not descending skipped directories.
func (s *scanner) walk() (map[string]stamp, error) {
	root := s.t.opts.Root
	snap := map[string]stamp{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // vanished or unreadable meanwhile
		}
		if p == root {
			return nil
		}
		if len(snap) >= s.t.opts.MaxScan {
			return errScanLimit
		}
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil {
			return nil //nolint:nilerr // cannot happen below root
		}
		rel = filepath.ToSlash(rel)
		info, ierr := d.Info()
		if ierr != nil {
			return nil //nolint:nilerr // vanished meanwhile
		}
		st := stamp{size: info.Size(), mtime: info.ModTime().UnixNano(), dir: d.IsDir()}
		if sys, ok := info.Sys().(*syscall.Stat_t); ok {
			st.ino = sys.Ino
		}
		snap[rel] = st
		if d.IsDir() && s.t.skipDir(d.Name()) {
			return filepath.SkipDir
		}
		return nil
	})
	if errors.Is(err, errScanLimit) {
		s.t.opts.Logger.Warn("workspace changes: tree larger than the scan limit; deeper changes are missed", "limit", s.t.opts.MaxScan)
		return snap, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	return snap, nil
}
