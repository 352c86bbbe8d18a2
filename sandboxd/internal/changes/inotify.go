package changes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchMask is what a directory watch reports. IN_MODIFY rather than IN_CLOSE_WRITE: a log or a
// database written through a descriptor held open is still a change. IN_ONLYDIR and IN_DONT_FOLLOW
// keep a watch from ever landing outside the tree through a symlink.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_MOVED_FROM |
	unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// inotify is the event-driven source: one watch per tracked directory.
type inotify struct {
	t    *Tracker
	fd   int
	wake [2]int // a pipe that interrupts the reader's poll on close

	// readMu serialises draining the descriptor (the reader goroutine and sync); the path maps are
	// only touched under it.
	readMu sync.Mutex
	byWD   map[int32]string // watch descriptor → directory relative to the root
	byPath map[string]int32
	// known holds every path below the watched directories, to tell a file replaced by a rename (an
	// editor's or sed -i's write-and-rename) from a new one.
	known  map[string]bool
	buf    []byte
	failed error
	done   chan struct{}
}

func startInotify(t *Tracker) (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init: %w", err)
	}
	w := &inotify{t: t, fd: fd, byWD: map[int32]string{}, byPath: map[string]int32{}, known: map[string]bool{}, buf: make([]byte, 64<<10), done: make(chan struct{})}
	if err := unix.Pipe2(w.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pipe: %w", err)
	}
	w.readMu.Lock()
	err = w.addTree(".", false)
	w.readMu.Unlock()
	if err != nil {
		w.closeFDs()
		return nil, err
	}
	go func() {
		err := w.run()
		close(w.done)
		if err != nil {
			// After done is closed: falling back closes this source, which waits for done.
			t.fallBack(err)
		}
	}()
	return w, nil
}

func (w *inotify) closeFDs() {
	unix.Close(w.fd)
	unix.Close(w.wake[0])
	unix.Close(w.wake[1])
}

// run drains events as they arrive, so the kernel queue (max_queued_events) does not overflow
// between queries.
func (w *inotify) run() error {
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(w.wake[0]), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		_, err := unix.Poll(fds, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		if fds[0].Revents != 0 {
			if err := w.sync(); err != nil {
				return err
			}
		}
	}
}

func (w *inotify) close() {
	_, _ = unix.Write(w.wake[1], []byte{1})
	<-w.done
	w.readMu.Lock()
	w.closeFDs()
	w.readMu.Unlock()
}

// sync reads every queued event and records it. Events are queued by the kernel when the change is
// made, so after sync the journal holds every change made before the call.
func (w *inotify) sync() error {
	w.readMu.Lock()
	defer w.readMu.Unlock()
	for w.failed == nil {
		n, err := unix.Read(w.fd, w.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				w.failed = fmt.Errorf("read: %w", err)
			}
			break
		}
		w.t.mu.Lock()
		w.handle(w.buf[:n])
		w.t.mu.Unlock()
	}
	return w.failed
}

// handle decodes a buffer of events; callers hold readMu and t.mu.
func (w *inotify) handle(b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00")
		b = b[end:]
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			// The kernel dropped events: nobody can know what changed. Re-walk so that at least
			// the watches cover every directory again.
			w.t.resetAll()
			w.rewatch()
			continue
		}
		dir, ok := w.byWD[ev.Wd]
		if !ok {
			continue
		}
		if ev.Mask&unix.IN_IGNORED != 0 {
			w.forget(ev.Wd)
			continue
		}
		if name == "" {
			continue // IN_DELETE_SELF of a watched directory: its parent reports the deletion
		}
		rel := relJoin(dir, name)
		isDir := ev.Mask&unix.IN_ISDIR != 0
		switch {
		case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			if w.known[rel] && !isDir {
				w.t.record(rel, Modified, false)
			} else {
				w.t.record(rel, Created, isDir)
			}
			w.known[rel] = true
			if isDir && !w.t.skipDir(name) {
				// Files may have appeared in the new directory before its watch existed: walking it
				// records them, and the watch catches the rest.
				if err := w.addTree(rel, true); err != nil {
					w.failed = err
					return
				}
			}
		case ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
			w.t.record(rel, Deleted, isDir)
			delete(w.known, rel)
			if isDir {
				w.unwatchTree(rel)
			}
		case ev.Mask&(unix.IN_MODIFY|unix.IN_ATTRIB) != 0:
			if !isDir {
				w.t.record(rel, Modified, false)
			}
		}
	}
}

// addTree watches rel and every directory below it that is not skipped; with report, every entry
// found is recorded as created. Callers hold readMu (and t.mu when report is set).
func (w *inotify) addTree(rel string, report bool) error {
	abs := filepath.Join(w.t.opts.Root, filepath.FromSlash(rel))
	wd, err := unix.InotifyAddWatch(w.fd, abs, watchMask)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EACCES):
			return nil // gone again, replaced by a file, or unreadable: nothing to watch
		case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.ENOMEM):
			return fmt.Errorf("inotify watch limit reached at %s (fs.inotify.max_user_watches): %w", rel, err)
		}
		return fmt.Errorf("watch %s: %w", rel, err)
	}
	if old, ok := w.byPath[rel]; ok && old != int32(wd) {
		delete(w.byWD, old)
	}
	w.byWD[int32(wd)] = rel
	w.byPath[rel] = int32(wd)
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil //nolint:nilerr // removed meanwhile: its parent reports that
	}
	for _, e := range entries {
		child := relJoin(rel, e.Name())
		w.known[child] = true
		if report {
			w.t.record(child, Created, e.IsDir())
		}
		if e.IsDir() && !w.t.skipDir(e.Name()) {
			if err := w.addTree(child, report); err != nil {
				return err
			}
		}
	}
	return nil
}

// unwatchTree drops the watches of a directory that moved away or was removed. A directory moved
// within the tree keeps its inode and so its watches, whose paths would be stale: they go, and the
// IN_MOVED_TO of the new place walks it again.
func (w *inotify) unwatchTree(rel string) {
	prefix := rel + "/"
	for p, wd := range w.byPath {
		if p == rel || strings.HasPrefix(p, prefix) {
			_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.byPath, p)
			delete(w.byWD, wd)
		}
	}
	for p := range w.known {
		if strings.HasPrefix(p, prefix) {
			delete(w.known, p)
		}
	}
}

func (w *inotify) forget(wd int32) {
	if p, ok := w.byWD[wd]; ok {
		delete(w.byWD, wd)
		if w.byPath[p] == wd {
			delete(w.byPath, p)
		}
	}
}

// rewatch walks the whole tree again after an overflow.
func (w *inotify) rewatch() {
	if err := w.addTree(".", false); err != nil {
		w.failed = err
	}
}
