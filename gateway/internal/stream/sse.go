package stream

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// SSE serves GET /api/sessions/{session_id}/events as text/event-stream.
// Each event's id is its sequence, so a browser's EventSource resumes by
// itself with Last-Event-ID after a reconnect.
func (b *Bridge) SSE() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, ok := b.admit(w, r, r.Header.Get("Last-Event-ID"))
		if !ok {
			return
		}
		defer sub.release()

		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)

		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		out, pumpErr, leave := b.subscribe(ctx, sub)
		defer leave()

		write := func(s string) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(b.o.WriteTimeout))
			if _, err := fmt.Fprint(w, s); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		// Tell the client how soon to reconnect, and get headers out now.
		if !write("retry: 1000\n\n") {
			return
		}
		ticker := time.NewTicker(b.o.PingInterval)
		defer ticker.Stop()
		for {
			select {
			case f, open := <-out:
				if !open {
					err := <-pumpErr
					code, reason := closeStatus(err)
					write(fmt.Sprintf("event: close\ndata: {\"code\":%d,\"reason\":%q}\n\n", code, reason))
					return
				}
				if !write(fmt.Sprintf("id: %d\ndata: %s\n\n", f.seq, f.data)) {
					return
				}
			case <-ticker.C:
				if !write(": ping\n\n") {
					return
				}
			case <-ctx.Done():
				return
			case <-b.closing:
				// Ending the response is the reconnect signal: EventSource comes back after the
				// retry above with Last-Event-ID (an explicit close event would read as final).
				return
			}
		}
	})
}
