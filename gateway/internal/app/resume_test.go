package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/gateway/internal/stream/streamtest"
)

// TestEventStreamCutMidReplay, on the real stack (agentd's log in Redis, the gateway's hub): a
// client following a session from the start is cut off (its TCP connection closed, no close
// handshake) while the replay of a log of hundreds of events is still being written to it, and
// while a new run appends events; it reconnects after the last event it received — with after_seq
// over WebSocket, with Last-Event-ID (the first URL kept, as an EventSource does) over SSE — and
// ends with every event exactly once, in order: the same as a full replay.
func TestEventStreamCutMidReplay(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	a := s.register("cut@example.com")
	r := s.do(req{method: "POST", path: "/api/sessions", token: a.access, body: map[string]any{}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	// send starts a run and returns its id.
	send := func(content string) string {
		r := s.do(req{method: "POST", path: "/api/chat/messages", token: a.access, body: map[string]any{"session_id": id, "content": content}})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		run, _ := r.json(t)["run_id"].(string)
		require.NotEmpty(t, run, "%s", r.body)
		return run
	}
	ends := func(run string) func(event) bool {
		return func(ev event) bool { return ev.Raw["run_id"] == run && runEnded(ev) }
	}
	// The log: runs one after the other until it holds hundreds of events.
	var logEnd uint32
	for logEnd < 300 {
		run := send("build a hello world page")
		c, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, logEnd), nil)
		require.NoError(t, err)
		c.SetReadLimit(1 << 20)
		evs := readWS(ctx, t, c, ends(run))
		_ = c.Close(websocket.StatusNormalClosure, "")
		logEnd = evs[len(evs)-1].Sequence
	}
	t.Logf("log of %d events", logEnd)

	for _, transport := range []string{"ws", "sse"} {
		t.Run(transport, func(t *testing.T) {
			var got []uint32
			var run string
			// One connection from after, until stop (then cut) or the end of the stream.
			follow := func(stop func(event) bool) error {
				cctx, ccancel := context.WithCancel(ctx)
				defer ccancel()
				var after uint32
				if len(got) > 0 {
					after = got[len(got)-1]
				}
				received := func(ev event) bool {
					got = append(got, ev.Sequence)
					// The new run starts while the first replay is under way, so its events are
					// appended while the log is replayed and the cut falls before they are all in.
					if len(got) == 40 {
						run = send("make the heading say hello again")
					}
					return stop(ev)
				}
				if transport == "ws" {
					c, _, err := wsDial(cctx, wsURL(s.gateway, id, a.access, after), nil)
					if err != nil {
						return err
					}
					// CloseNow closes the TCP connection without a close handshake: a cut.
					defer func() { _ = c.CloseNow() }()
					c.SetReadLimit(1 << 20)
					for {
						_, msg, err := c.Read(cctx)
						if err != nil {
							return err
						}
						var ev event
						if err := json.Unmarshal(msg, &ev); err != nil {
							return err
						}
						if err := json.Unmarshal(msg, &ev.Raw); err != nil {
							return err
						}
						if received(ev) {
							return nil
						}
					}
				}
				hr, err := http.NewRequestWithContext(cctx, http.MethodGet, s.base+"/api/sessions/"+id+"/events?after_seq=0", nil)
				if err != nil {
					return err
				}
				hr.Header.Set("Authorization", "Bearer "+a.access)
				if len(got) > 0 {
					hr.Header.Set("Last-Event-ID", strconv.FormatUint(uint64(after), 10))
				}
				return streamtest.ReadSSE(hr, func(lastID uint32, raw []byte) (bool, error) {
					var ev event
					if err := json.Unmarshal(raw, &ev); err != nil {
						return false, err
					}
					if err := json.Unmarshal(raw, &ev.Raw); err != nil {
						return false, err
					}
					if ev.Sequence != lastID {
						return false, fmt.Errorf("SSE id %d carries event %d", lastID, ev.Sequence)
					}
					return received(ev), nil
				})
			}

			// Cut in the middle of the replay: the log so far is replayed from 0.
			cutAt := int(logEnd) / 2
			require.NoError(t, follow(func(event) bool { return len(got) == cutAt }))
			require.Less(t, got[len(got)-1], logEnd, "the cut fell in the replay")
			require.NotEmpty(t, run, "the second run was started during the replay")
			// Back after the last event received, to the end of the new run.
			require.NoError(t, follow(ends(run)))

			for i := 1; i < len(got); i++ {
				require.Greater(t, got[i], got[i-1], "duplicate or out of order at %d", i)
			}
			// A full replay is the ground truth.
			c, _, err := wsDial(ctx, wsURL(s.gateway, id, a.access, 0), nil)
			require.NoError(t, err)
			c.SetReadLimit(1 << 20)
			all := readWS(ctx, t, c, ends(run))
			_ = c.Close(websocket.StatusNormalClosure, "")
			want := make([]uint32, 0, len(all))
			for _, ev := range all {
				want = append(want, ev.Sequence)
			}
			require.Equal(t, want, got, "what arrived across the cut differs from the log")
			logEnd = got[len(got)-1]
			t.Logf("%s: %d events, cut after %d", transport, len(got), cutAt)
		})
	}
}
