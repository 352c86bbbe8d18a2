package agent

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// linkGuard keeps the files API from serving a file through a hard link whose other names lie outside the
// sandbox.
//
// os.Root confines every name to the workspace, but a hard link is a name inside the workspace for an inode
// that may have other names anywhere on the same file system: with the local driver, `ln ~/.ssh/id_rsa key`
// in a command makes the host user's key readable — and writable — through the files API. Inside a container
// this cannot happen: link(2) fails with EXDEV across mounts, so every inode a sandbox process can link lies on
// the container's own file systems (its image layer and volumes), which are the sandbox's. The guard is off
// there (nil).
//
// The rule on the host: a regular file with more than one link is read or written only when every one of its
// links lies inside the sandbox's own directories (the scope: for the local driver its workspace, home and
// temp dir). Anything else is refused with CodeDenied. Deleting a link removes a name, never content, and
// stays allowed; the tree lists such files as it lists any other.
//
// Why the scope and not the workspace alone: package managers hard-link from a content store. pnpm's default
// store is under $HOME (~/.local/share/pnpm/store), and the local driver gives every sandbox a home of its own
// next to its workspace, so every file of a pnpm project's node_modules has its other link in the sandbox's
// home. A rule confined to the workspace would make all of node_modules unreadable, and the sandbox's own home
// is no leak. `cp -l` and `git clone` of a local repository link within the workspace and pass too. A store
// shared between sandboxes or with the host (a pnpm store-dir configured outside the sandbox) is refused by
// design: sharing inodes with the outside is exactly the leak.
//
// fstat gives a file's link count, not where its links are, so the guard walks the scope and counts the names
// of every multiply-linked inode: a file whose count there equals its link count has no link elsewhere. A walk
// costs an lstat per file of the scope, so its index is reused for an inode whose ctime — which link(2),
// unlink(2) and rename(2) of the inode all update — predates the walk: a pnpm project costs one walk, not one
// per read. The index also expires after linkIndexTTL, which bounds the one change no inode's ctime shows: a
// directory holding a link renamed into or out of the scope.
type linkGuard struct {
	scope []string

	mu      sync.Mutex
	index   map[inode]int // names found in the scope per inode with more than one link
	walked  time.Time     // when the walk behind index started; zero before the first
	partial bool          // that walk stopped at linkWalkLimit
}

type inode struct{ dev, ino uint64 }

const (
	// linkIndexTTL bounds how long a walk's index answers.
	linkIndexTTL = time.Minute
	// linkWalkLimit bounds a walk: beyond it a file cannot be verified and is refused.
	linkWalkLimit = 1_000_000
	// ctimeSlack covers the coarse clock file systems stamp ctime with (one scheduler tick, 10 ms at HZ=100,
	// behind the real time): only an inode whose ctime is older than a walk's start by more than this was
	// changed before the walk saw it.
	ctimeSlack = 20 * time.Millisecond
	// linkAttempts bounds the re-walks for a file whose links keep changing.
	linkAttempts = 3
)

// newLinkGuard returns a guard over the given directories, or nil (no guard) for none.
func newLinkGuard(scope []string) *linkGuard {
	var dirs []string
	for _, d := range scope {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		dirs = append(dirs, abs)
	}
	if len(dirs) == 0 {
		return nil
	}
	// A directory inside another would be walked, and its links counted, twice.
	slices.Sort(dirs)
	outer := dirs[:0]
	for _, d := range dirs {
		if n := len(outer); n > 0 && (d == outer[n-1] || strings.HasPrefix(d, outer[n-1]+string(filepath.Separator))) {
			continue
		}
		outer = append(outer, d)
	}
	return &linkGuard{scope: outer}
}

// check decides whether f, a regular file opened as rel whose fstat is fi, may be read or written.
func (g *linkGuard) check(f *os.File, fi os.FileInfo, rel string) error {
	if g == nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink <= 1 {
		return nil
	}
	id := inode{dev: uint64(st.Dev), ino: st.Ino} //nolint:unconvert // Dev is not uint64 on every platform
	asked := time.Now()
	for attempt := 1; ; attempt++ {
		ctime := time.Unix(st.Ctim.Unix())
		count, walked, partial := g.lookup(id, ctime, asked)
		settled := ctime.Add(ctimeSlack).Before(walked)
		if settled {
			// The walk began after the inode's last link change; it must not have changed during the walk
			// either, or the count may mix names from before and after.
			now, err := f.Stat()
			if err != nil {
				return err
			}
			st2 := now.Sys().(*syscall.Stat_t)
			if st2.Nlink == st.Nlink && st2.Ctim == st.Ctim {
				if count == int(st.Nlink) {
					return nil
				}
				if partial {
					return errf(agentapi.CodeDenied, "%s: has %d hard links, and the sandbox holds too many files (over %d) to check that they all lie inside it",
						shortPath(rel), st.Nlink, linkWalkLimit)
				}
				return errf(agentapi.CodeDenied, "%s: is a hard link to a file outside the sandbox (%d links, %d inside); the files API serves only the sandbox's own files",
					shortPath(rel), st.Nlink, count)
			}
			st = st2
		}
		if attempt == linkAttempts {
			return errf(agentapi.CodeDenied, "%s: its hard links are changing; try again", shortPath(rel))
		}
		if !settled {
			// Linked (cp -l, an install) moments before this call: wait out the clock's slack, then walk.
			time.Sleep(time.Until(ctime.Add(ctimeSlack + time.Millisecond)))
		}
		asked = time.Now()
	}
}

// lookup returns the count of id's names in the scope from an index that answers for an inode last changed at
// ctime, walking the scope first when the index cannot; asked is when the caller fstat'ed the inode.
func (g *linkGuard) lookup(id inode, ctime, asked time.Time) (count int, walked time.Time, partial bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fresh := !g.walked.IsZero() && time.Since(g.walked) < linkIndexTTL &&
		// A walk that began after the caller looked is as fresh as any: concurrent readers of a newly linked
		// tree share one walk.
		(ctime.Add(ctimeSlack).Before(g.walked) || g.walked.After(asked))
	if !fresh {
		g.walk()
	}
	return g.index[id], g.walked, g.partial
}

var errWalkLimit = errors.New("link walk limit")

// walk rebuilds the index. Symlinks are not followed (a link's name is where it is), and unreadable
// directories are skipped: a link missed there only makes a count smaller, which refuses, never admits.
func (g *linkGuard) walk() {
	g.walked = time.Now()
	g.index = make(map[inode]int)
	g.partial = false
	seen := 0
	for _, dir := range g.scope {
		if errors.Is(g.walkDir(dir, &seen), errWalkLimit) {
			g.partial = true
			return
		}
	}
}

// walkDir counts the names below dir. Each file is fstatat'ed relative to its directory's descriptor, which
// costs about half of an lstat of its whole path (filepath.WalkDir's Info). A directory is closed before its
// subdirectories are walked, so a deep tree holds one descriptor, not one per level.
func (g *linkGuard) walkDir(dir string, seen *int) error {
	subdirs, err := g.countDir(dir, seen)
	if err != nil {
		return err
	}
	for _, sub := range subdirs {
		if err := g.walkDir(filepath.Join(dir, sub), seen); err != nil {
			return err
		}
	}
	return nil
}

// countDir counts the multiply-linked files of dir and returns its subdirectories.
func (g *linkGuard) countDir(dir string, seen *int) ([]string, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, nil
	}
	var subdirs []string
	for {
		des, err := f.ReadDir(1024)
		for _, de := range des {
			if *seen++; *seen > linkWalkLimit {
				return nil, errWalkLimit
			}
			switch {
			case de.IsDir():
				subdirs = append(subdirs, de.Name())
			case de.Type().IsRegular():
				var st unix.Stat_t
				var serr error
				if cerr := sc.Control(func(fd uintptr) {
					serr = unix.Fstatat(int(fd), de.Name(), &st, unix.AT_SYMLINK_NOFOLLOW)
				}); cerr == nil && serr == nil && st.Nlink > 1 {
					g.index[inode{dev: st.Dev, ino: st.Ino}]++
				}
			}
		}
		if err != nil {
			return subdirs, nil // io.EOF, or an unreadable rest of the directory
		}
	}
}
