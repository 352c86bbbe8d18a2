package stream

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
)

// A hub shares one upstream StreamEvents among all of a user's clients of
// one session on this replica (several tabs, several devices), so agentd
// serves one tail per session and replica instead of one per client. A
// client joins a hub only when the hub can hand it every event after its
// after_seq from its ring of recent events, atomically with joining live
// delivery; any other client (a replay from far back) gets a stream of its
// own, as before. A member that falls a buffer behind (a long replay into a
// slow page, a tab in the background) leaves the hub for a stream of its own
// from its last event, so it neither holds up its siblings nor is dropped.

// ringSize is how many recent events a hub keeps for joining clients.
const ringSize = 1024

type hubKey struct{ user, session string }

type hub struct {
	b   *Bridge
	key hubKey

	mu     sync.Mutex
	ring   []frame
	floor  uint32 // every event after floor is in ring (or not yet received)
	last   uint32 // highest sequence received
	subs   map[*member]struct{}
	done   bool
	cancel context.CancelFunc
}

// member is one client attached to a hub.
type member struct {
	sub  subscription
	out  chan frame
	errc chan error
	// after is the client's position when it joined. A hub still replaying (created by a tab that
	// started from further back) can be behind a client that resumes after events it received on an
	// earlier connection: what the hub then catches up on up to after, the client already has.
	after uint32
	// last is the last event put on out; own, once set, stops the stream of its own the member left
	// the hub for. Both are guarded by the hub's mu.
	last uint32
	own  context.CancelFunc
}

// join attaches a client at position after to the session's hub, creating
// it when there is none. ok is false when the hub cannot serve the client
// exactly (its ring does not reach back to after, or the replay would not
// fit the client's buffer): the caller then streams on its own.
func (b *Bridge) join(sub *subscription) (m *member, leave func(), ok bool) {
	key := hubKey{user: sub.user.UserID, session: sub.session}
	b.mu.Lock()
	h := b.hubs[key]
	if h != nil {
		h.mu.Lock()
		if h.done {
			h.mu.Unlock()
			h = nil
		}
	}
	fresh := h == nil
	if fresh {
		ctx, cancel := context.WithCancel(auth.NewContext(context.Background(), sub.user))
		h = &hub{b: b, key: key, floor: sub.after, last: sub.after, subs: map[*member]struct{}{}, cancel: cancel}
		h.mu.Lock()
		b.hubs[key] = h
		defer func() { go h.run(ctx) }()
	}
	b.mu.Unlock()
	defer h.mu.Unlock()

	if sub.after < h.floor {
		return nil, nil, false
	}
	var replay []frame
	for _, f := range h.ring {
		if f.seq > sub.after {
			replay = append(replay, f)
		}
	}
	if len(replay) > b.o.Buffer {
		return nil, nil, false
	}
	m = &member{sub: *sub, out: make(chan frame, b.o.Buffer), errc: make(chan error, 1), after: sub.after, last: sub.after}
	for _, f := range replay {
		m.out <- f
		m.last = f.seq
	}
	h.subs[m] = struct{}{}
	return m, func() { h.leave(m) }, true
}

// leave detaches m; the last one out stops the upstream stream.
func (h *hub) leave(m *member) {
	h.mu.Lock()
	if m.own != nil {
		m.own()
	}
	delete(h.subs, m)
	last := len(h.subs) == 0 && !h.done
	if last {
		h.done = true
		h.cancel()
	}
	h.mu.Unlock()
	if last {
		h.forget()
	}
}

func (h *hub) forget() {
	h.b.mu.Lock()
	if h.b.hubs[h.key] == h {
		delete(h.b.hubs, h.key)
	}
	h.b.mu.Unlock()
}

// run follows the session's log from the hub's position, resuming after a
// broken connection to agentd, and ends every member with the final error.
func (h *hub) run(ctx context.Context) {
	failures := 0
	var err error
	for {
		err = h.follow(ctx, &failures)
		if ctx.Err() != nil || errors.Is(err, io.EOF) || status.Code(err) != codes.Unavailable || failures >= resumeAttempts {
			break
		}
		failures++
		h.mu.Lock()
		last := h.last
		h.mu.Unlock()
		h.b.o.Logger.WarnContext(ctx, "event stream broke, resuming", "session_id", h.key.session, "after_seq", last, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
		}
	}
	h.mu.Lock()
	h.done = true
	h.cancel()
	for m := range h.subs {
		m.errc <- err
		close(m.out)
	}
	h.subs = nil
	h.mu.Unlock()
	h.forget()
}

func (h *hub) follow(ctx context.Context, failures *int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.mu.Lock()
	after := h.last
	h.mu.Unlock()
	st, err := h.b.o.Events.StreamEvents(ctx, eventsRequest(h.key.session, after))
	if err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		*failures = 0
		ev := resp.GetEvent()
		if ev == nil {
			continue
		}
		data, err := h.b.o.JSON.Marshal(ev)
		if err != nil {
			return err
		}
		h.deliver(frame{seq: ev.GetSequence(), data: data})
	}
}

// deliver appends f to the ring and hands it to every member that does not
// have it yet; a member whose buffer is full goes on by itself (detach), the
// others are not delayed.
func (h *hub) deliver(f frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.seq <= h.last {
		return
	}
	h.last = f.seq
	h.ring = append(h.ring, f)
	if len(h.ring) > ringSize {
		h.floor = h.ring[0].seq
		h.ring = h.ring[1:]
	}
	for m := range h.subs {
		if f.seq <= m.after {
			continue
		}
		select {
		case m.out <- f:
			m.last = f.seq
		default:
			h.detach(m)
		}
	}
}

// detach moves m, whose buffer is full, from the hub to a stream of its own from the last event it
// was given: that stream waits on the client (agentd's stream is flow-controlled), so a client that
// reads slowly still gets every event once, in order, and one that stops reading is cut by the
// write timeout. Called with h.mu held.
func (h *hub) detach(m *member) {
	delete(h.subs, m)
	ctx, cancel := context.WithCancel(auth.NewContext(context.Background(), m.sub.user))
	m.own = cancel
	sub := m.sub
	sub.after = m.last
	go func() { m.errc <- h.b.pump(ctx, &sub, m.out) }()
}
