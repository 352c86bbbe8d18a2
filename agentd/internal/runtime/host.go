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

// Token events are coalesced: one event per tokenBytes of text or tokenInterval, whichever first.
const (
	tokenBytes    = 48
	tokenInterval = 150 * time.Millisecond
)

// host gives the workflow fenced access to the run's records: every write carries the lease token,
// so a replica that lost the run cannot write into the session any more.
type host struct {
	store     *store.Store
	lease     store.Lease
	sessionID string
	runID     string

	mu        sync.Mutex
	tokMsg    string
	tokAgent  string
	tokBuf    []byte
	tokFlushd time.Time
}

func (h *host) Emit(ctx context.Context, ev events.Event, msg *events.Message) error {
	h.flush(ctx)
	_, err := h.store.Append(ctx, ev, msg, h.lease)
	return err
}

func (h *host) Token(ctx context.Context, messageID, agent, text string) {
	h.mu.Lock()
	if h.tokMsg != messageID {
		h.mu.Unlock()
		h.flush(ctx)
		h.mu.Lock()
		h.tokMsg, h.tokAgent, h.tokFlushd = messageID, agent, time.Now()
	}
	h.tokBuf = append(h.tokBuf, text...)
	due := len(h.tokBuf) >= tokenBytes || time.Since(h.tokFlushd) >= tokenInterval
	h.mu.Unlock()
	if due {
		h.flush(ctx)
	}
}

func (h *host) flush(ctx context.Context) {
	h.mu.Lock()
	if len(h.tokBuf) == 0 {
		h.mu.Unlock()
		return
	}
	sender := events.SenderAgent
	if h.tokAgent == registry.LeadName {
		sender = events.SenderMike
	}
	ev := events.Event{Type: events.TypeToken, Sender: sender, Agent: h.tokAgent, Content: string(h.tokBuf),
		MessageID: h.tokMsg, SessionID: h.sessionID, Timestamp: time.Now().UTC(), RunID: h.runID}
	h.tokBuf = h.tokBuf[:0]
	h.tokFlushd = time.Now()
	h.mu.Unlock()
	// Best effort: a lost token is replaced by the final message event carrying the whole text.
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
