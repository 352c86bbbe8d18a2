// Package eventtest reads a session's event stream in agentd's tests (the in-process suite and the
// end-to-end one): collect events until a condition holds, the conditions tests wait for, and a
// readable dump for failure messages.
package eventtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

// Collect streams the session's events after after until done says stop, and fails t when the
// stream ends first or timeout passes.
func Collect(t testing.TB, events agentdv1.EventServiceClient, ctx context.Context, sid string, after uint32, timeout time.Duration,
	done func([]*agentdv1.Event) bool,
) []*agentdv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := events.StreamEvents(ctx, &agentdv1.StreamEventsRequest{SessionId: sid, AfterSeq: after})
	require.NoError(t, err)
	var out []*agentdv1.Event
	for {
		r, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.DeadlineExceeded {
				t.Fatalf("event stream ended before the expected events: %v; got %s", err, Describe(out))
			}
			require.NoError(t, err)
		}
		out = append(out, r.GetEvent())
		if done(out) {
			return out
		}
	}
}

// Describe renders events one per line, contents cut, for failure messages.
func Describe(evs []*agentdv1.Event) string {
	var b strings.Builder
	for _, e := range evs {
		c := e.GetContent()
		if len(c) > 160 {
			c = c[:160] + "…"
		}
		fmt.Fprintf(&b, "\n  %d %s %s %s: %s", e.GetSequence(), e.GetType(), e.GetAgent(), e.GetTool(), c)
	}
	return b.String()
}

// RunStatus is the run status an event carries ("" when none).
func RunStatus(e *agentdv1.Event) string { return e.GetData().GetFields()["status"].GetStringValue() }

// RunEnded holds when the last event closes the run with one of the statuses (a run's end, or a
// status or error event that leaves it waiting).
func RunEnded(statuses ...string) func([]*agentdv1.Event) bool {
	return func(evs []*agentdv1.Event) bool {
		last := evs[len(evs)-1]
		for _, s := range statuses {
			if RunStatus(last) == s && (last.GetType() == "run" || last.GetType() == "status" || last.GetType() == "error") {
				return true
			}
		}
		return false
	}
}
