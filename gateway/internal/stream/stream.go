// Package stream bridges agentd's per-session event log (EventService
// StreamEvents, gRPC server streaming) to browsers over WebSocket and
// Server-Sent Events.
//
// Each client connection has its own bounded buffer, and a slow client
// delays nobody else: a client reading slowly gets events at its own pace
// from an upstream stream of its own (agentd's gRPC stream is
// flow-controlled), and one that stops reading is cut by the write timeout.
// A user's clients of one session share one upstream stream on this replica
// (see hub.go), cancelled the moment the last of them goes. Events are forwarded in sequence order and
// never twice: the bridge remembers the last sequence it received and, when
// the upstream stream breaks (an agentd restart), resumes it from there.
package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// Options configures a Bridge.
type Options struct {
	Events agentdv1.EventServiceClient
	Errors httperr.Writer
	Logger *slog.Logger
	// JSON encodes each event (the gateway's one JSON encoding).
	JSON protojson.MarshalOptions
	// Slots bounds the streams a user keeps open, across replicas.
	Slots *Slots
	// Buffer is how many events may wait for a client: a hub's member that
	// falls this far behind continues on a stream of its own.
	Buffer int
	// PingInterval is the keep-alive period (WebSocket ping, SSE comment).
	PingInterval time.Duration
	// WriteTimeout bounds one write to the client.
	WriteTimeout time.Duration
	// OriginPatterns are the browser origins allowed to open a WebSocket
	// (host patterns, see websocket.AcceptOptions).
	OriginPatterns []string
}

// Bridge serves event streams.
type Bridge struct {
	o Options

	mu   sync.Mutex
	hubs map[hubKey]*hub

	// closing is closed by Close: every stream ends and its client reconnects.
	closing   chan struct{}
	closeOnce sync.Once
}

// New returns a Bridge.
func New(o Options) *Bridge {
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	return &Bridge{o: o, hubs: map[hubKey]*hub{}, closing: make(chan struct{})}
}

// Close ends every event stream, open or opened later, as the server shuts down: WebSocket clients
// get 1012 (service restart) and SSE responses end, so both reconnect — to a replica that is not
// stopping — and resume after their last event from the durable log. Without it an HTTP server's
// shutdown waits its whole timeout on SSE responses, which never end by themselves, and WebSockets
// (hijacked, so not waited for) are cut without a close frame when the process exits.
func (b *Bridge) Close() { b.closeOnce.Do(func() { close(b.closing) }) }

// frame is one encoded event.
type frame struct {
	seq  uint32
	data []byte
}

// subscription is an admitted client: its principal, session and position.
type subscription struct {
	user    auth.Principal
	session string
	after   uint32
	release func()
}

// admit validates the request, checks the caller owns the session, and takes
// one of the user's stream slots. On failure it has answered the request.
func (b *Bridge) admit(w http.ResponseWriter, r *http.Request, lastEventID string) (*subscription, bool) {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		b.o.Errors.Reason(w, r, errorsv1.ErrorReason_UNAUTHENTICATED, "")
		return nil, false
	}
	session := r.PathValue("session_id")
	if _, err := uuid.Parse(session); err != nil {
		b.o.Errors.Reason(w, r, errorsv1.ErrorReason_INVALID_ARGUMENT, "session_id: must be a UUID")
		return nil, false
	}
	// Last-Event-ID wins over after_seq: an EventSource reconnects to the URL it was made with,
	// after_seq and all, adding the id of the last event it received, which is always the newer
	// position. Taking after_seq then would replay everything in between a second time.
	var after uint32
	raw, field := lastEventID, "Last-Event-ID"
	if raw == "" {
		raw, field = r.URL.Query().Get("after_seq"), "after_seq"
	}
	if raw != "" {
		n, err := strconv.ParseUint(raw, 10, 32)
		if err != nil {
			b.o.Errors.Reason(w, r, errorsv1.ErrorReason_INVALID_ARGUMENT, field+": must be a non-negative integer")
			return nil, false
		}
		after = uint32(n)
	}
	// A foreign or missing session must be a proper 404 before any upgrade.
	// A probe stream asks agentd exactly that, from the session's record
	// (never its history), and ends at once.
	if err := b.owns(r.Context(), session); err != nil {
		b.o.Errors.Write(w, r, err)
		return nil, false
	}
	release, err := b.acquire(r.Context(), p.UserID)
	if err != nil {
		b.o.Errors.Write(w, r, err)
		return nil, false
	}
	return &subscription{user: p, session: session, after: after, release: release}, true
}

func (b *Bridge) owns(ctx context.Context, session string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := b.o.Events.StreamEvents(ctx, &agentdv1.StreamEventsRequest{SessionId: session, Probe: true})
	if err != nil {
		return err
	}
	if _, err := st.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// acquire takes one of the user's stream slots for the client.
func (b *Bridge) acquire(ctx context.Context, user string) (func(), error) {
	release, err := b.o.Slots.Acquire(ctx, user)
	if err != nil {
		return nil, err
	}
	clients.Add(context.Background(), 1)
	var once sync.Once
	return func() {
		once.Do(func() {
			clients.Add(context.Background(), -1)
			release()
		})
	}, nil
}

func eventsRequest(session string, after uint32) *agentdv1.StreamEventsRequest {
	return &agentdv1.StreamEventsRequest{SessionId: session, AfterSeq: after}
}

// subscribe returns the client's event channel, closed after the final
// error is put on errc, and the function to call when the client goes. The
// client shares its session's hub when the hub can serve it exactly, else
// it gets an upstream stream of its own.
func (b *Bridge) subscribe(ctx context.Context, sub *subscription) (out <-chan frame, errc <-chan error, leave func()) {
	if m, leave, ok := b.join(sub); ok {
		return m.out, m.errc, leave
	}
	own := make(chan frame, b.o.Buffer)
	ownErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	go func() { ownErr <- b.pump(ctx, sub, own) }()
	return own, ownErr, cancel
}

// resumeAttempts bounds how often a broken upstream stream is reopened
// before the client is told to reconnect itself.
const resumeAttempts = 5

// pump reads the session's events from agentd into out until ctx ends or the
// upstream ends the stream, waiting on out when it is full (the client's
// pace). It closes out when it returns.
func (b *Bridge) pump(ctx context.Context, sub *subscription, out chan<- frame) error {
	defer close(out)
	last := sub.after
	failures := 0
	for {
		err := b.follow(ctx, sub.session, &last, out, &failures)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			return err
		}
		// Unavailable means the connection to agentd broke (a restart, a
		// replica going away): the log is durable, so pick up where we
		// were. Anything else (NotFound after a delete, ...) is final.
		if status.Code(err) != codes.Unavailable || failures >= resumeAttempts {
			return err
		}
		failures++
		b.o.Logger.WarnContext(ctx, "event stream broke, resuming", "session_id", sub.session, "after_seq", last, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
		}
	}
}

func (b *Bridge) follow(ctx context.Context, session string, last *uint32, out chan<- frame, failures *int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := b.o.Events.StreamEvents(ctx, eventsRequest(session, *last))
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
		// The log's sequence is strictly increasing; anything at or below
		// what we forwarded is a replay overlap after a resume.
		if ev == nil || ev.GetSequence() <= *last {
			continue
		}
		data, err := b.o.JSON.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		select {
		case out <- frame{seq: ev.GetSequence(), data: data}:
			*last = ev.GetSequence()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
