package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
)

type redisMessage = redis.Message

// Streamed pieces are coalesced into one event per message: token text at 48 bytes or 150 ms,
// whichever comes first; tool-call arguments, which run to whole files, at 2 KiB or 250 ms, so a
// file being written shows up a few times a second without one event per model token.
const (
	tokenBytes       = 48
	tokenInterval    = 150 * time.Millisecond
	toolArgsBytes    = 2048
	toolArgsInterval = 250 * time.Millisecond
)

// host gives the workflow fenced access to the run's records: every write carries the lease token,
// so a replica that lost the run cannot write any more into the session.
type host struct {
	store     *store.Store
	lease     store.Lease
	sessionID string
	runID     string

	mu       sync.Mutex
	partType string // events.TypeToken or events.TypeToolCallDelta
	partMsg  string
	partWho  string
	partTool string
	partBuf  []byte
	partSent time.Time
}

func (h *host) Emit(ctx context.Context, ev events.Event, msg *events.Message) error {
	h.flush(ctx)
	_, err := h.store.Append(ctx, ev, msg, h.lease)
	return err
}

func (h *host) Token(ctx context.Context, messageID, agent, text string) {
	h.partial(ctx, events.TypeToken, messageID, agent, "", text)
}

func (h *host) ToolCallDelta(ctx context.Context, messageID, agent, tool, args string) {
	h.partial(ctx, events.TypeToolCallDelta, messageID, agent, tool, args)
}

func (h *host) partial(ctx context.Context, typ, messageID, agent, tool, text string) {
	h.mu.Lock()
	if h.partMsg != messageID || h.partType != typ {
		h.mu.Unlock()
		h.flush(ctx)
		h.mu.Lock()
		h.partType, h.partMsg, h.partWho, h.partTool, h.partSent = typ, messageID, agent, tool, time.Now()
	}
	if tool != "" {
		h.partTool = tool
	}
	h.partBuf = append(h.partBuf, text...)
	size, every := tokenBytes, tokenInterval
	if typ == events.TypeToolCallDelta {
		size, every = toolArgsBytes, toolArgsInterval
	}
	due := len(h.partBuf) >= size || time.Since(h.partSent) >= every
	h.mu.Unlock()
	if due {
		h.flush(ctx)
	}
}

func (h *host) flush(ctx context.Context) {
	h.mu.Lock()
	if len(h.partBuf) == 0 {
		h.mu.Unlock()
		return
	}
	sender := events.SenderAgent
	if h.partWho == registry.LeadName {
		sender = events.SenderMike
	}
	ev := events.Event{Type: h.partType, Sender: sender, Agent: h.partWho, Content: string(h.partBuf),
		MessageID: h.partMsg, SessionID: h.sessionID, Timestamp: time.Now().UTC(), RunID: h.runID}
	if h.partType == events.TypeToolCallDelta {
		ev.Tool, ev.Invoker = h.partTool, h.partWho
		ev.Data = map[string]any{"partial": true}
	}
	h.partBuf = h.partBuf[:0]
	h.partSent = time.Now()
	h.mu.Unlock()
	// Best effort: a lost piece is replaced by the final event carrying the whole text.
	_, _ = h.store.Append(ctx, ev, nil, h.lease)
}

func (h *host) Checkpoint(ctx context.Context, st *workflow.State, u store.Usage) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("runtime: encode checkpoint: %w", err)
	}
	return h.store.Checkpoint(ctx, h.lease, b, u)
}

func (h *host) BeginTool(ctx context.Context, key, tool string) (bool, store.ToolRecord, error) {
	return h.store.BeginTool(ctx, h.lease, key, tool)
}

func (h *host) EndTool(ctx context.Context, key string, rec store.ToolRecord) error {
	// Recorded even when the run was cancelled meanwhile: the effect happened.
	return h.store.EndTool(context.WithoutCancel(ctx), h.lease, key, rec)
}
