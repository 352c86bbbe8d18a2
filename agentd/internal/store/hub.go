package store

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Hub wakes the event streams a replica serves when their session's log grows. All of a replica's
// followers share one Pub/Sub connection, so a thousand open streams cost no Redis connections while
// they wait; a blocking XREAD per stream would each hold a pooled connection and starve the rest of
// the service. Notifications are hints: followers also re-read on a timer, which covers a Pub/Sub
// reconnect.
type Hub struct {
	ps *redis.PubSub

	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{} // channel → followers
}

// NewHub starts a hub; it runs until ctx ends.
func (s *Store) NewHub(ctx context.Context) *Hub {
	h := &Hub{ps: s.rdb.Subscribe(ctx), subs: map[string]map[chan struct{}]struct{}{}}
	go h.run(ctx)
	return h
}

func (h *Hub) run(ctx context.Context) {
	defer h.ps.Close()
	ch := h.ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			h.mu.Lock()
			for f := range h.subs[m.Channel] {
				select {
				case f <- struct{}{}:
				default: // already woken; it re-reads everything new anyway
				}
			}
			h.mu.Unlock()
		}
	}
}

// Follow returns a channel that receives a value whenever the session's log may have grown, and the
// function that stops following.
func (h *Hub) Follow(ctx context.Context, sessionID string) (<-chan struct{}, func()) {
	channel := sessionEventsKey(sessionID)
	f := make(chan struct{}, 1)
	h.mu.Lock()
	if len(h.subs[channel]) == 0 {
		h.subs[channel] = map[chan struct{}]struct{}{}
		// Failure only delays followers until their next timed re-read.
		_ = h.ps.Subscribe(ctx, channel)
	}
	h.subs[channel][f] = struct{}{}
	h.mu.Unlock()
	return f, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[channel], f)
		if len(h.subs[channel]) == 0 {
			delete(h.subs, channel)
			_ = h.ps.Unsubscribe(context.WithoutCancel(ctx), channel)
		}
	}
}

// Followed returns the number of sessions followed.
func (h *Hub) Followed() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
