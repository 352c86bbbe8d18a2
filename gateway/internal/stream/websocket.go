package stream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Close codes beyond RFC 6455's, in the private range: 4000 + HTTP status.
const (
	closeNotFound     websocket.StatusCode = 4404
	closeUnauthorized websocket.StatusCode = 4401
)

// WebSocket serves WS /api/ws/sessions/{session_id}?after_seq=. The caller was authenticated
// before (the edge): by an Authorization header, by `?token=`, or by the access token offered as a
// subprotocol after BearerProtocol, which is then the protocol selected.
func (b *Bridge) WebSocket() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, ok := b.admit(w, r, "")
		if !ok {
			return
		}
		defer sub.release()

		// Only BearerProtocol can be selected: a client that offered it must see it echoed (or its
		// browser drops the connection), and the token it offered next is never a candidate.
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: b.o.OriginPatterns, Subprotocols: []string{BearerProtocol}})
		if err != nil {
			// Accept has answered the request (400/403).
			return
		}
		// Clients only ever send control frames; a data message is
		// ignored, but a huge one must not cost memory.
		c.SetReadLimit(4096)

		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		// The reader notices the client going away (close frame, reset)
		// and cancels ctx, which cancels the upstream gRPC stream. It also
		// processes pongs, which Ping below waits for.
		go func() {
			defer cancel()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()

		out, pumpErr, leave := b.subscribe(ctx, sub)
		defer leave()

		ticker := time.NewTicker(b.o.PingInterval)
		defer ticker.Stop()
		for {
			select {
			case f, open := <-out:
				if !open {
					err := <-pumpErr
					code, reason := closeStatus(err)
					_ = c.Close(code, reason)
					return
				}
				wctx, wcancel := context.WithTimeout(ctx, b.o.WriteTimeout)
				err := c.Write(wctx, websocket.MessageText, f.data)
				wcancel()
				if err != nil {
					cancel()
					_ = c.CloseNow()
					return
				}
			case <-ticker.C:
				pctx, pcancel := context.WithTimeout(ctx, b.o.WriteTimeout)
				err := c.Ping(pctx)
				pcancel()
				if err != nil {
					// No pong in time: the peer is gone or stuck.
					cancel()
					_ = c.CloseNow()
					return
				}
			case <-ctx.Done():
				_ = c.CloseNow()
				return
			case <-b.closing:
				_ = c.Close(websocket.StatusServiceRestart, "server restarting, reconnect with after_seq")
				return
			}
		}
	})
}

func closeStatus(err error) (websocket.StatusCode, string) {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return websocket.StatusNormalClosure, "stream ended"
	}
	switch status.Code(err) {
	case codes.NotFound:
		return closeNotFound, "session not found"
	case codes.Unauthenticated:
		return closeUnauthorized, "unauthenticated"
	default:
		return websocket.StatusTryAgainLater, "event stream unavailable, reconnect with after_seq"
	}
}
