package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	"github.com/mgx-ai/mgx/gateway/internal/stream"
	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

// The bridge's own behaviour under conditions a real agentd does not produce
// on demand (a burst faster than a client reads, a broken upstream stream)
// is tested against an EventService served over real gRPC on loopback. The
// end-to-end behaviour with the real agentd is in package app's tests.

const session = "0b5f7c1e-7a53-4c1a-9d0e-3f1b2c4d5e6f"

// upstream serves a session log of total events, each padded to size bytes.
// It breaks the stream with Unavailable once after breakAt events, and
// reports every stream's end on ended.
type upstream struct {
	agentdv1.UnimplementedEventServiceServer
	total, size, breakAt int
	broke                atomic.Bool
	ended                chan uint32 // after_seq of each stream that ended
	live                 chan struct{}
	streams              atomic.Int32
}

func (u *upstream) StreamEvents(r *agentdv1.StreamEventsRequest, st grpc.ServerStreamingServer[agentdv1.StreamEventsResponse]) error {
	// As agentd: ownership first; the bridge's probe asks no more.
	if r.GetSessionId() != session {
		return status.Error(codes.NotFound, "session not found")
	}
	if r.GetProbe() {
		return nil
	}
	u.streams.Add(1)
	defer func() { u.ended <- r.GetAfterSeq() }()
	pad := strings.Repeat("x", u.size)
	for seq := r.GetAfterSeq() + 1; seq <= uint32(u.total); seq++ {
		if u.breakAt > 0 && int(seq) > u.breakAt && u.broke.CompareAndSwap(false, true) {
			return status.Error(codes.Unavailable, "agentd restarting")
		}
		ev := &agentdv1.Event{Type: "token", SessionId: session, Sequence: seq, Content: pad}
		if err := st.Send(&agentdv1.StreamEventsResponse{Event: ev}); err != nil {
			return err
		}
	}
	if u.live != nil {
		u.live <- struct{}{}
	}
	<-st.Context().Done() // tail: nothing more, until the client goes
	return nil
}

func TestMain(m *testing.M) { stacktest.Main(m) }

// slots is a bound of max streams per user, in a Redis database of the test's own.
func slots(t *testing.T, max int) *stream.Slots { return slotsIn(t, stacktest.SharedRedis(t), max) }

// slotsIn is slots in the Redis at url: bridges given slots of one Redis share them, as gateway
// replicas do.
func slotsIn(t *testing.T, url string, max int) *stream.Slots {
	t.Helper()
	rdb, err := redisclient.New(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return stream.NewSlots(rdb, max, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func serve(t *testing.T, u agentdv1.EventServiceServer, opts stream.Options) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	agentdv1.RegisterEventServiceServer(srv, u)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })

	opts.Events = agentdv1.NewEventServiceClient(cc)
	opts.Errors = httperr.Writer{}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.JSON = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}
	if opts.PingInterval == 0 {
		opts.PingInterval = time.Minute
	}
	b := stream.New(opts)
	mux := http.NewServeMux()
	mux.Handle("GET /ws/{session_id}", b.WebSocket())
	mux.Handle("GET /sse/{session_id}", b.SSE())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		mux.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), auth.Principal{UserID: user})))
	})
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return strings.Replace(hs.URL, "http", "ws", 1)
}

func readAll(ctx context.Context, t *testing.T, c *websocket.Conn, n int) []uint32 {
	t.Helper()
	var seqs []uint32
	for len(seqs) < n {
		_, msg, err := c.Read(ctx)
		require.NoError(t, err)
		var ev struct {
			Sequence uint32 `json:"sequence"`
		}
		require.NoError(t, json.Unmarshal(msg, &ev))
		seqs = append(seqs, ev.Sequence)
	}
	return seqs
}

func TestSlowConsumerDroppedOthersUnharmed(t *testing.T) {
	u := &upstream{total: 400, size: 64 << 10, ended: make(chan uint32, 8)}
	base := serve(t, u, stream.Options{Slots: slots(t, 8), Buffer: 512, WriteTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	slow, _, err := wsDial(ctx, base+"/ws/"+session+"?user=slow", nil)
	require.NoError(t, err)
	defer func() { _ = slow.CloseNow() }()
	fast, _, err := wsDial(ctx, base+"/ws/"+session+"?user=fast", nil)
	require.NoError(t, err)
	defer func() { _ = fast.CloseNow() }()
	fast.SetReadLimit(1 << 20)

	// The fast client gets the whole log in order while the slow one, which
	// reads nothing, is cut off by the write timeout.
	seqs := readAll(ctx, t, fast, u.total)
	for i, s := range seqs {
		require.EqualValues(t, i+1, s)
	}
	select {
	case <-u.ended: // the slow client's upstream stream was cancelled
	case <-ctx.Done():
		t.Fatal("slow consumer's upstream stream never ended")
	}
	slow.SetReadLimit(1 << 20)
	var closeErr error
	for closeErr == nil {
		_, _, closeErr = slow.Read(ctx)
	}
	require.NotErrorIs(t, closeErr, context.DeadlineExceeded)
}

// TestSlowReaderGoesAtItsOwnPace: a tab that falls behind its hub (a long replay into a slow page, a
// tab in the background) leaves the hub for a stream of its own instead of being dropped: it gets every
// event once, in order, at its pace, while its sibling tab on the same hub is not held up.
func TestSlowReaderGoesAtItsOwnPace(t *testing.T) {
	// Far more than the socket buffers hold, so the slow tab's writes really wait on it.
	u := &upstream{total: 1500, size: 16 << 10, ended: make(chan uint32, 8)}
	base := serve(t, u, stream.Options{Slots: slots(t, 8), Buffer: 32, WriteTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	slow, _, err := wsDial(ctx, base+"/ws/"+session+"?user=u", nil)
	require.NoError(t, err)
	defer func() { _ = slow.CloseNow() }()
	slow.SetReadLimit(1 << 20)
	fast, _, err := wsDial(ctx, base+"/ws/"+session+"?user=u", nil)
	require.NoError(t, err)
	defer func() { _ = fast.CloseNow() }()
	fast.SetReadLimit(1 << 20)

	fastDone := make(chan time.Time, 1)
	go func() {
		seqs := readAll(ctx, t, fast, u.total)
		for i, s := range seqs {
			if uint32(i+1) != s {
				t.Errorf("fast tab: event %d has sequence %d", i, s)
				break
			}
		}
		fastDone <- time.Now()
	}()
	// The slow tab reads nothing for a while (in the background), then one event at a time.
	time.Sleep(500 * time.Millisecond)
	var seqs []uint32
	for len(seqs) < u.total {
		_, msg, err := slow.Read(ctx)
		require.NoError(t, err, "the slow tab's stream was cut after %d events", len(seqs))
		var ev struct {
			Sequence uint32 `json:"sequence"`
		}
		require.NoError(t, json.Unmarshal(msg, &ev))
		seqs = append(seqs, ev.Sequence)
		time.Sleep(time.Millisecond)
	}
	slowDone := time.Now()
	for i, s := range seqs {
		require.EqualValues(t, i+1, s, "slow tab: every event once, in order")
	}
	select {
	case at := <-fastDone:
		require.True(t, at.Before(slowDone), "the fast tab finished first: the slow one did not hold it up")
	case <-ctx.Done():
		t.Fatal("the fast tab never got the whole log")
	}
	require.GreaterOrEqual(t, u.streams.Load(), int32(2), "the slow tab went on by a stream of its own")
}

func TestUpstreamClosedWhenClientGoes(t *testing.T) {
	u := &upstream{total: 3, ended: make(chan uint32, 1), live: make(chan struct{}, 1)}
	base := serve(t, u, stream.Options{Slots: slots(t, 8), Buffer: 16})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := wsDial(ctx, base+"/ws/"+session+"?user=u", nil)
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 2, 3}, readAll(ctx, t, c, 3))
	<-u.live
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
	select {
	case <-u.ended:
	case <-ctx.Done():
		t.Fatal("upstream stream still open after the client left")
	}
}

func TestResumeAfterUpstreamBreak(t *testing.T) {
	u := &upstream{total: 20, breakAt: 7, ended: make(chan uint32, 4), live: make(chan struct{}, 1)}
	base := serve(t, u, stream.Options{Slots: slots(t, 8), Buffer: 64})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := wsDial(ctx, base+"/ws/"+session+"?user=u&after_seq=2", nil)
	require.NoError(t, err)
	defer func() { _ = c.CloseNow() }()
	got := readAll(ctx, t, c, 18)
	want := make([]uint32, 0, 18)
	for s := uint32(3); s <= 20; s++ {
		want = append(want, s)
	}
	require.Equal(t, want, got, "no gap, no duplicate across the upstream break")
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
	require.Equal(t, uint32(2), <-u.ended)
	require.Equal(t, uint32(7), <-u.ended, "resumed after the last forwarded event")
}

func TestAdmission(t *testing.T) {
	u := &upstream{total: 0, ended: make(chan uint32, 16), live: make(chan struct{}, 16)}
	redisURL := stacktest.SharedRedis(t)
	base := serve(t, u, stream.Options{Slots: slotsIn(t, redisURL, 2), Buffer: 4})
	// Another replica of the gateway, sharing the first one's Redis.
	replica := serve(t, u, stream.Options{Slots: slotsIn(t, redisURL, 2), Buffer: 4})
	httpBase := strings.Replace(base, "ws", "http", 1)
	tests := []struct {
		name, path  string
		lastEventID string
		want        int
	}{
		{"bad uuid", "/ws/nope?user=a", "", http.StatusBadRequest},
		{"bad after_seq", "/ws/" + session + "?user=a&after_seq=-1", "", http.StatusBadRequest},
		{"huge after_seq", "/ws/" + session + "?user=a&after_seq=99999999999", "", http.StatusBadRequest},
		{"unknown session", "/ws/" + strings.Replace(session, "0b", "ff", 1) + "?user=a", "", http.StatusNotFound},
		{"sse unknown session", "/sse/" + strings.Replace(session, "0b", "ff", 1) + "?user=a", "", http.StatusNotFound},
		{"sse bad Last-Event-ID", "/sse/" + session + "?user=a&after_seq=3", "x", http.StatusBadRequest},
		{"no user", "/ws/" + session, "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, httpBase+tt.path, nil)
			require.NoError(t, err)
			if tt.lastEventID != "" {
				req.Header.Set("Last-Event-ID", tt.lastEventID)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, tt.want, resp.StatusCode, "%s", body)
			if tt.lastEventID != "" {
				require.Contains(t, string(body), "Last-Event-ID", "the detail names the header that was wrong")
			}
		})
	}

	t.Run("per user bound, across replicas", func(t *testing.T) {
		ctx := t.Context()
		var conns []*websocket.Conn
		for _, b := range []string{base, replica} {
			c, _, err := wsDial(ctx, b+"/ws/"+session+"?user=a", nil)
			require.NoError(t, err)
			conns = append(conns, c)
		}
		for _, b := range []string{base, replica} {
			_, code, err := wsDial(ctx, b+"/ws/"+session+"?user=a", nil)
			require.Error(t, err)
			require.Equal(t, http.StatusTooManyRequests, code, "the user's two streams count on every replica")
		}
		resp, err := http.Get(strings.Replace(replica, "ws", "http", 1) + "/sse/" + session + "?user=a")
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "SSE counts with WebSocket")
		require.Equal(t, "5", resp.Header.Get("Retry-After"))
		// Another user is not affected.
		other, _, err := wsDial(ctx, base+"/ws/"+session+"?user=b", nil)
		require.NoError(t, err)
		_ = other.Close(websocket.StatusNormalClosure, "")
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { _ = c.Close(websocket.StatusNormalClosure, "") })
		}
		wg.Wait()
		require.Eventually(t, func() bool {
			c, _, err := wsDial(ctx, base+"/ws/"+session+"?user=a", nil)
			if err != nil {
				return false
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
			return true
		}, 5*time.Second, 20*time.Millisecond, "slots not released")
	})
}

// TestKeepAlive: a client that answers pings stays; one that stopped
// reading (so never answers) is cut and its upstream stream closed.
func TestKeepAlive(t *testing.T) {
	u := &upstream{total: 1, ended: make(chan uint32, 2), live: make(chan struct{}, 2)}
	base := serve(t, u, stream.Options{Slots: slots(t, 8), Buffer: 16, PingInterval: 50 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	alive, _, err := wsDial(ctx, base+"/ws/"+session+"?user=a", nil)
	require.NoError(t, err)
	defer func() { _ = alive.CloseNow() }()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		for {
			if _, _, err := alive.Read(readCtx); err != nil {
				return
			}
		}
	}()
	<-u.live

	dead, _, err := wsDial(ctx, base+"/ws/"+session+"?user=b", nil)
	require.NoError(t, err)
	defer func() { _ = dead.CloseNow() }()
	<-u.live
	// dead never reads: its pongs are never sent.
	select {
	case <-u.ended:
	case <-ctx.Done():
		t.Fatal("a peer that stopped answering pings was never dropped")
	}
	select {
	case <-u.ended:
		t.Fatal("a peer answering pings was dropped")
	case <-time.After(500 * time.Millisecond):
	}
}

// wsDial is websocket.Dial returning the handshake's HTTP status, so a
// refused upgrade can be checked. coder/websocket leaves the
// body nil on success and a drained copy on failure; closing it is a no-op
// kept for linters that cannot know that.
func wsDial(ctx context.Context, url string, opts *websocket.DialOptions) (*websocket.Conn, int, error) {
	c, resp, err := websocket.Dial(ctx, url, opts)
	code := 0
	if resp != nil {
		code = resp.StatusCode
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
	}
	return c, code, err
}

// TestSharedUpstream: one user's clients of one session share one upstream
// stream; a client joining later replays from the hub's ring exactly from
// its after_seq; a slow member is dropped without hurting the others; the
// upstream closes with the last client.
func TestSharedUpstream(t *testing.T) {
	u := &upstream{total: 300, size: 64 << 10, ended: make(chan uint32, 8), live: make(chan struct{}, 8)}
	base := serve(t, u, stream.Options{Slots: slots(t, 8), Buffer: 512, WriteTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dial := func(after int) *websocket.Conn {
		c, _, err := wsDial(ctx, fmt.Sprintf("%s/ws/%s?user=u&after_seq=%d", base, session, after), nil)
		require.NoError(t, err)
		c.SetReadLimit(1 << 20)
		return c
	}
	first := dial(0)
	defer func() { _ = first.CloseNow() }()
	require.Len(t, readAll(ctx, t, first, 300), 300)
	<-u.live

	second := dial(250)
	defer func() { _ = second.CloseNow() }()
	got := readAll(ctx, t, second, 50)
	require.EqualValues(t, 251, got[0])
	require.EqualValues(t, 300, got[49])
	require.EqualValues(t, 1, u.streams.Load(), "the second client shares the first one's upstream stream")

	// A client whose position is older than the hub's ring gets its own.
	u2 := &upstream{total: ringSizeForTest + 10, ended: make(chan uint32, 8), live: make(chan struct{}, 8)}
	base2 := serve(t, u2, stream.Options{Slots: slots(t, 8), Buffer: 4096})
	a, _, err := wsDial(ctx, base2+"/ws/"+session+"?user=u", nil)
	require.NoError(t, err)
	defer func() { _ = a.CloseNow() }()
	readAll(ctx, t, a, ringSizeForTest+10)
	<-u2.live
	b, _, err := wsDial(ctx, base2+"/ws/"+session+"?user=u&after_seq=1", nil)
	require.NoError(t, err)
	defer func() { _ = b.CloseNow() }()
	got = readAll(ctx, t, b, ringSizeForTest+9)
	require.EqualValues(t, 2, got[0])
	require.EqualValues(t, 2, u2.streams.Load())

	require.NoError(t, first.Close(websocket.StatusNormalClosure, ""))
	select {
	case <-u.ended:
		t.Fatal("upstream closed while a client still listens")
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, second.Close(websocket.StatusNormalClosure, ""))
	select {
	case <-u.ended:
	case <-ctx.Done():
		t.Fatal("upstream still open after the last client left")
	}
}

// ringSizeForTest mirrors stream.ringSize.
const ringSizeForTest = 1024
