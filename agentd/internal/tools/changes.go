package tools

import (
	"context"
	"sort"
	"sync"
	"time"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// liveChangesAfter is how long a command runs before the paths it changes are announced while it
// still runs; a quick command's changes arrive once, with its result.
const liveChangesAfter = time.Second

// watcher reads the workspace's change journal around a call, so that every path the call (or what
// it ran) changed is announced — the UI's file tree never goes stale after `sed -i` or `npm create`.
type watcher struct {
	x      *Executor
	c      *Call
	cursor string

	mu        sync.Mutex
	announced map[string]bool
	seen      map[string]*sandboxdv1.FileChange // every change of the call's own window, by path
	collected bool
	stopLive  context.CancelFunc
	liveDone  chan struct{}
}

// watch starts a call's window in the change journal. Changes since the session's previous watched
// call (a dev server writing files meanwhile) are announced at once. It returns nil when the journal
// cannot be read: the call then reports only the paths it knows itself.
func (x *Executor) watch(ctx context.Context, c *Call) *watcher {
	w := &watcher{x: x, c: c, announced: map[string]bool{}, seen: map[string]*sandboxdv1.FileChange{}}
	res, err := x.files.ListChanges(ctx, &sandboxdv1.ListChangesRequest{SessionId: c.SessionID, Cursor: x.cursors.get(c.SessionID)})
	if err != nil {
		x.opts.Logger.DebugContext(ctx, "workspace change journal unavailable", "session", c.SessionID, "err", err)
		return nil
	}
	w.cursor = res.GetCursor()
	if paths := changedPaths(res.GetChanges()); len(paths) > 0 {
		for _, p := range paths {
			w.announced[p] = true
		}
		c.changed(paths)
	}
	c.watch = w
	return w
}

// live announces changes while a long command runs, from liveChangesAfter on, until collect.
func (w *watcher) live(ctx context.Context) {
	if w == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.stopLive, w.liveDone = cancel, make(chan struct{})
	w.mu.Unlock()
	go func() {
		defer close(w.liveDone)
		select {
		case <-ctx.Done():
			return
		case <-time.After(liveChangesAfter):
		}
		for ctx.Err() == nil {
			res, err := w.x.files.ListChanges(ctx, &sandboxdv1.ListChangesRequest{SessionId: w.c.SessionID, Cursor: w.cursorNow(), WaitMs: 2000})
			if err != nil {
				if ctx.Err() == nil {
					time.Sleep(500 * time.Millisecond)
				}
				continue
			}
			if fresh := w.absorb(res, true); len(fresh) > 0 {
				w.c.changed(fresh)
			}
		}
	}()
}

func (w *watcher) cursorNow() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cursor
}

// absorb records an answer of the journal; with announce it returns the paths not announced yet and
// marks them announced.
func (w *watcher) absorb(res *sandboxdv1.ListChangesResponse, announce bool) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if res.GetCursor() != "" {
		w.cursor = res.GetCursor()
	}
	var fresh []string
	for _, ch := range res.GetChanges() {
		w.seen[ch.GetPath()] = ch
		if announce && !w.announced[ch.GetPath()] {
			w.announced[ch.GetPath()] = true
			fresh = append(fresh, ch.GetPath())
		}
	}
	return fresh
}

// collect ends the window: it stops the live announcements, reads what is left of the journal and
// returns every change of the call's window. Calling it again returns the same.
func (w *watcher) collect(ctx context.Context) []*sandboxdv1.FileChange {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	stop, done, collected := w.stopLive, w.liveDone, w.collected
	w.collected = true
	w.mu.Unlock()
	if !collected {
		if stop != nil {
			stop()
			<-done
		}
		// The call may have been cancelled; the journal is still read so the cursor stays right.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for page := 0; page < 20; page++ {
			res, err := w.x.files.ListChanges(rctx, &sandboxdv1.ListChangesRequest{SessionId: w.c.SessionID, Cursor: w.cursorNow()})
			if err != nil {
				break
			}
			w.absorb(res, false)
			if !res.GetTruncated() {
				break
			}
		}
		w.x.cursors.set(w.c.SessionID, w.cursorNow())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*sandboxdv1.FileChange, 0, len(w.seen))
	for _, ch := range w.seen {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetPath() < out[j].GetPath() })
	return out
}

// finish collects the window and returns the paths to announce with the result: those the call
// reports itself and those the journal saw, minus what was announced already.
func (w *watcher) finish(ctx context.Context, own []string) []string {
	changes := w.collect(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	set := map[string]bool{}
	for _, p := range own {
		if !w.announced[p] {
			set[p] = true
		}
	}
	for _, ch := range changes {
		if !w.announced[ch.GetPath()] {
			set[ch.GetPath()] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// changedAny reports whether anything changed in the workspace during the call's window (or just
// before it, announced at its start).
func (w *watcher) changedAny() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen) > 0 || len(w.announced) > 0
}

func changedPaths(cs []*sandboxdv1.FileChange) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.GetPath())
	}
	return out
}
