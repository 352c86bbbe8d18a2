package stream_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mgx-ai/mgx/gateway/internal/stream"
	"github.com/mgx-ai/mgx/gateway/internal/stream/streamtest"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

// liveLog is a session log that grows while it is streamed, served the way agentd serves it:
// the replay after after_seq, then the tail, woken by every append. pace slows the replay down
// (each event costs pace), so a hub can be caught in the middle of one.
type liveLog struct {
	agentdv1.UnimplementedEventServiceServer
	pad     string
	pace    time.Duration
	streams atomic.Int32

	mu   sync.Mutex
	n    uint32
	grew chan struct{} // closed and replaced by every append
}

func newLiveLog(events, size int) *liveLog {
	l := &liveLog{pad: strings.Repeat("x", size), grew: make(chan struct{})}
	l.append(events)
	return l
}

func (l *liveLog) append(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += uint32(n)
	close(l.grew)
	l.grew = make(chan struct{})
}

func (l *liveLog) len() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *liveLog) StreamEvents(r *agentdv1.StreamEventsRequest, st grpc.ServerStreamingServer[agentdv1.StreamEventsResponse]) error {
	if r.GetSessionId() != session {
		return status.Error(codes.NotFound, "session not found")
	}
	if r.GetProbe() {
		return nil
	}
	l.streams.Add(1)
	after := r.GetAfterSeq()
	for {
		l.mu.Lock()
		n, grew := l.n, l.grew
		l.mu.Unlock()
		for ; after < n; after++ {
			if l.pace > 0 {
				time.Sleep(l.pace)
			}
			seq := after + 1
			ev := &agentdv1.Event{Type: "token", SessionId: session, Sequence: seq, Content: fmt.Sprintf("event %d %s", seq, l.pad)}
			if err := st.Send(&agentdv1.StreamEventsResponse{Event: ev}); err != nil {
				return err
			}
		}
		select {
		case <-st.Context().Done():
			return nil
		case <-grew:
		}
	}
}

// client is one browser tab following the session as the console does: it remembers the last
// sequence it received and, whenever its connection ends, reconnects resuming after it.
type client struct {
	base string // ws://host
	sse  bool
	// firstAfter is the position of the first connection. With sse it stays in the URL of every
	// reconnect, as an EventSource keeps the URL it was made with and adds Last-Event-ID.
	firstAfter uint32
	// onEvent is called after each event received.
	onEvent func(seq uint32)

	got        []uint32
	last       atomic.Uint32 // the last event received, for other goroutines
	reconnects int
}

var (
	// errCut is how the test ends a connection itself.
	errCut = errors.New("cut by the test")
	// errWrong is an event that is not what its sequence says: no reconnect mends that.
	errWrong = errors.New("wrong event")
)

// follow opens one connection and reads events into c.got until stop says so (then it returns
// errCut, having cut the TCP connection without a close handshake) or the connection ends.
func (c *client) follow(ctx context.Context, stop func(seq uint32) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	after := c.firstAfter
	if len(c.got) > 0 {
		after = c.got[len(c.got)-1]
	}
	// received checks one event and reports whether to cut the connection now.
	received := func(raw []byte, id uint32) (bool, error) {
		var ev struct {
			Sequence uint32 `json:"sequence"`
			Content  string `json:"content"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			return false, err
		}
		if c.sse && id != ev.Sequence {
			return false, fmt.Errorf("%w: SSE id %d carries event %d", errWrong, id, ev.Sequence)
		}
		if !strings.HasPrefix(ev.Content, fmt.Sprintf("event %d ", ev.Sequence)) {
			return false, fmt.Errorf("%w: event %d carries another event's content", errWrong, ev.Sequence)
		}
		c.got = append(c.got, ev.Sequence)
		c.last.Store(ev.Sequence)
		if c.onEvent != nil {
			c.onEvent(ev.Sequence)
		}
		return stop(ev.Sequence), nil
	}
	if !c.sse {
		ws, _, err := wsDial(ctx, fmt.Sprintf("%s/ws/%s?user=u&after_seq=%d", c.base, session, after), nil)
		if err != nil {
			return err
		}
		// CloseNow closes the TCP connection without a close handshake: a cut, as a dropped
		// network or a killed tab.
		defer func() { _ = ws.CloseNow() }()
		ws.SetReadLimit(1 << 20)
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				return err
			}
			if cut, err := received(msg, 0); err != nil || cut {
				return cmp.Or(err, errCut)
			}
		}
	}
	url := fmt.Sprintf("%s/sse/%s?user=u", strings.Replace(c.base, "ws", "http", 1), session)
	if c.firstAfter > 0 {
		url += fmt.Sprintf("&after_seq=%d", c.firstAfter)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if len(c.got) > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(uint64(after), 10))
	}
	// Stopping closes the TCP connection mid-stream: a cut.
	err = streamtest.ReadSSE(req, func(id uint32, data []byte) (bool, error) {
		if id == 0 {
			return false, nil
		}
		return received(data, id)
	})
	return cmp.Or(err, errCut)
}

// until follows, reconnecting as the console does after any end that was not its own cut
// (a slow-consumer drop, say), until it has received want; then it cuts the connection.
func (c *client) until(ctx context.Context, want uint32) error {
	for len(c.got) == 0 || c.got[len(c.got)-1] < want {
		err := c.follow(ctx, func(seq uint32) bool { return seq >= want })
		if errors.Is(err, errCut) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("never received event %d (last %d): %w", want, c.last.Load(), err)
		}
		if errors.Is(err, errWrong) {
			return err
		}
		c.reconnects++
	}
	return nil
}

// requireExactlyOnce: every event of (from, to] exactly once, in order.
func requireExactlyOnce(t *testing.T, got []uint32, from, to uint32) {
	t.Helper()
	require.NotEmpty(t, got)
	for i := 1; i < len(got); i++ {
		require.Greater(t, got[i], got[i-1], "duplicate or out of order at %d: ...%v...", i, got[max(0, i-3):min(len(got), i+3)])
	}
	require.Equal(t, from+1, got[0], "first event")
	require.Len(t, got, int(to-from), "a gap: %d events of (%d, %d]", len(got), from, to)
	require.Equal(t, to, got[len(got)-1])
}

// Another tab of the same user, for the hub variants.
const (
	noTab     = iota
	tabBefore // follows from 0 before the client comes and throughout
	tabAway   // opens from 0 while the client is away, and follows to the end
)

// TestResumeMidReplay: a client cut off while the replay of a long log is still being written to
// it resumes after the last event it actually received, and ends with every event exactly once,
// in order — across the replay, the cut, the switch to the live tail and events appended meanwhile,
// alone or sharing its session's hub with another tab.
func TestResumeMidReplay(t *testing.T) {
	tests := []struct {
		name string
		sse  bool
		// log is the events recorded before the client comes; concurrent, more appended while the
		// first replay runs; live, the events appended after the cut (half while the client is
		// away, half once it is back and following).
		log, concurrent, live int
		from                  uint32 // the client's first position
		cutAt                 uint32 // the client cuts its connection once it has this event
		tab                   int
		// pace slows agentd's replay, so a hub is caught mid-replay.
		pace time.Duration
	}{
		{name: "ws from 0", log: 600, live: 60, cutAt: 250},
		{name: "ws from partway", log: 600, live: 60, from: 120, cutAt: 300},
		{name: "ws cut at the switch to the tail", log: 400, live: 60, cutAt: 400},
		{name: "ws appends during the replay", log: 600, concurrent: 200, live: 60, cutAt: 350},
		{name: "ws another tab keeps the hub", log: 600, live: 60, cutAt: 250, tab: tabBefore},
		{name: "ws resume older than the ring", log: 1500, live: 60, cutAt: 300, tab: tabBefore},
		{name: "ws resume into a hub still replaying", log: 800, live: 60, cutAt: 500, tab: tabAway, pace: time.Millisecond},
		{name: "sse from 0", sse: true, log: 600, live: 60, cutAt: 250},
		{name: "sse from partway", sse: true, log: 600, live: 60, from: 120, cutAt: 300},
		{name: "sse cut at the switch to the tail", sse: true, log: 400, live: 60, cutAt: 400},
		{name: "sse appends during the replay", sse: true, log: 600, concurrent: 200, live: 60, cutAt: 350},
		{name: "sse another tab keeps the hub", sse: true, log: 600, live: 60, cutAt: 250, tab: tabBefore},
		{name: "sse resume into a hub still replaying", sse: true, log: 800, live: 60, cutAt: 500, tab: tabAway, pace: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLiveLog(tt.log, 2<<10)
			l.pace = tt.pace
			base := serve(t, l, stream.Options{Slots: slots(t, 8), Buffer: 1024, WriteTimeout: 5 * time.Second})
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			total := uint32(tt.log + tt.concurrent + tt.live)
			back := uint32(tt.log + tt.concurrent + tt.live/2) // appended before the client is back

			other := &client{base: base}
			otherDone := make(chan error, 1)
			openTab := func(has uint32) {
				go func() { otherDone <- other.until(ctx, total) }()
				require.Eventually(t, func() bool { return other.last.Load() >= has }, 30*time.Second, time.Millisecond, "the other tab never got event %d", has)
			}
			if tt.tab == tabBefore {
				// The whole log first: the hub is live, its ring holds the last ringSize events.
				openTab(uint32(tt.log))
			}

			c := &client{base: base, sse: tt.sse, firstAfter: tt.from}
			var appended sync.WaitGroup
			if tt.concurrent > 0 {
				appended.Go(func() {
					for range tt.concurrent / 10 {
						l.append(10)
						time.Sleep(time.Millisecond)
					}
				})
			}
			require.NoError(t, c.until(ctx, tt.cutAt))
			if tt.cutAt < uint32(tt.log) {
				require.Greater(t, l.len(), tt.cutAt, "the cut fell in the replay")
			}
			appended.Wait()
			l.append(tt.live / 2)

			if tt.tab == tabAway {
				openTab(1)
				require.Less(t, other.last.Load(), tt.cutAt, "the other tab's hub is still replaying when the client is back")
			}
			// Back: the rest of the log, then live events appended while it follows.
			var once sync.Once
			c.onEvent = func(seq uint32) {
				if seq == back {
					once.Do(func() { l.append(tt.live - tt.live/2) })
				}
			}
			require.NoError(t, c.until(ctx, total))
			requireExactlyOnce(t, c.got, tt.from, total)
			if tt.tab != noTab {
				require.NoError(t, <-otherDone)
				requireExactlyOnce(t, other.got, 0, total)
			}
			t.Logf("upstream streams %d, reconnects beyond the cut: client %d, other tab %d", l.streams.Load(), c.reconnects, other.reconnects)
		})
	}
}
