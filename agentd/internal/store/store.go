// Package store keeps agentd's state in Redis: sessions, their message history and durable event log,
// runs with their leases, checkpoints and tool-call records, and the run queue. Multi-key transitions
// are Lua scripts (scripts.go); every key is built in keys.go.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
)

// Domain errors. The RPC edge turns them into gRPC status codes.
var (
	// ErrNotFound: the session or run does not exist, or belongs to another user.
	ErrNotFound = errors.New("not found")
	// ErrRunActive: the session already has a run in progress.
	ErrRunActive = errors.New("a run is already in progress for this session")
	// ErrNotWaiting: no run of the session waits for the user's answer.
	ErrNotWaiting = errors.New("no question is waiting for an answer")
	// ErrLeaseLost: this replica no longer holds the run's lease; another replica took it over.
	ErrLeaseLost = errors.New("run lease lost")
	// ErrInboxUnread: the run cannot complete, the user posted a message its lead has not read.
	ErrInboxUnread = errors.New("the run's inbox holds unread messages")
	// ErrConversationLost: a stored conversation is shorter than the run's checkpoint says.
	ErrConversationLost = errors.New("a stored conversation is shorter than its checkpoint")
	// ErrSessionLimit: the owner has as many sessions as they may have.
	ErrSessionLimit = errors.New("session limit reached")
)

// Store is agentd's Redis state. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// New returns a store over rdb.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, now: time.Now}
}

// Client returns the underlying Redis client (for pub/sub).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Session is a chat session.
type Session struct {
	ID           string
	Title        string
	OwnerID      string
	CreatedAt    time.Time
	InputTokens  int64
	OutputTokens int64
	CostUSD      float64
	// Cache counts are part of InputTokens: how many were read from or written to the prompt cache.
	CacheReadTokens  int64
	CacheWriteTokens int64
}

// CreateSession stores a new session owned by sess.OwnerID, unless the owner has maxPerUser sessions
// already (ErrSessionLimit; 0 means no limit). Every replica counts in the owner's index, and the
// count and the addition are one script, so concurrent creations cannot overshoot.
func (s *Store) CreateSession(ctx context.Context, sess Session, maxPerUser int) error {
	// The session hash is written before the owner's index: a crash in between leaves an unlisted
	// session, never an index entry pointing nowhere (ListSessions also tolerates those).
	if err := s.rdb.HSet(ctx, sessionKey(sess.ID),
		"id", sess.ID, "owner", sess.OwnerID, "title", sess.Title,
		"created_at", sess.CreatedAt.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	index := func() (int, error) {
		return indexSessionScript.Run(ctx, s.rdb, []string{userSessionsKey(sess.OwnerID)},
			maxPerUser, sess.CreatedAt.UnixMilli(), sess.ID).Int()
	}
	indexed, err := index()
	if err == nil && indexed == 0 {
		// The index may still hold entries of sessions a delete removed only halfway; listing prunes
		// them, so they never count against the limit for long.
		var live []Session
		if live, err = s.ListSessions(ctx, sess.OwnerID); err == nil && len(live) < maxPerUser {
			indexed, err = index()
		}
	}
	if err == nil && indexed == 1 {
		return nil
	}
	if derr := s.rdb.Del(context.WithoutCancel(ctx), sessionKey(sess.ID)).Err(); derr != nil {
		err = errors.Join(err, derr)
	}
	if err != nil {
		return fmt.Errorf("store: index session: %w", err)
	}
	return ErrSessionLimit
}

// GetSession returns the session if ownerID owns it.
func (s *Store) GetSession(ctx context.Context, ownerID, id string) (Session, error) {
	m, err := s.rdb.HGetAll(ctx, sessionKey(id)).Result()
	if err != nil {
		return Session{}, fmt.Errorf("store: get session: %w", err)
	}
	sess, ok := parseSession(m)
	if !ok || sess.OwnerID != ownerID {
		return Session{}, ErrNotFound
	}
	return sess, nil
}

// SessionOwner returns the owner of a session, whoever asks (for background work).
func (s *Store) SessionOwner(ctx context.Context, id string) (string, error) {
	owner, err := s.rdb.HGet(ctx, sessionKey(id), "owner").Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: session owner: %w", err)
	}
	return owner, nil
}

func parseSession(m map[string]string) (Session, bool) {
	if m["id"] == "" {
		return Session{}, false
	}
	ms, _ := strconv.ParseInt(m["created_at"], 10, 64)
	in, _ := strconv.ParseInt(m["input_tokens"], 10, 64)
	out, _ := strconv.ParseInt(m["output_tokens"], 10, 64)
	cost, _ := strconv.ParseFloat(m["cost_usd"], 64)
	cacheRead, _ := strconv.ParseInt(m["cache_read_tokens"], 10, 64)
	cacheWrite, _ := strconv.ParseInt(m["cache_write_tokens"], 10, 64)
	return Session{
		ID: m["id"], Title: m["title"], OwnerID: m["owner"], CreatedAt: time.UnixMilli(ms).UTC(),
		InputTokens: in, OutputTokens: out, CostUSD: cost, CacheReadTokens: cacheRead, CacheWriteTokens: cacheWrite,
	}, true
}

// ListSessions returns ownerID's sessions, newest first.
func (s *Store) ListSessions(ctx context.Context, ownerID string) ([]Session, error) {
	ids, err := s.rdb.ZRevRange(ctx, userSessionsKey(ownerID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	// Not a MULTI: the hashes live in different slots; each HGETALL is consistent on its own.
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, sessionKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	out := make([]Session, 0, len(ids))
	for i, c := range cmds {
		sess, ok := parseSession(c.Val())
		if !ok || sess.OwnerID != ownerID {
			// Left behind by a delete that died between its two steps.
			s.rdb.ZRem(ctx, userSessionsKey(ownerID), ids[i])
			continue
		}
		out = append(out, sess)
	}
	return out, nil
}

// DeleteSession deletes a session and everything recorded for it.
func (s *Store) DeleteSession(ctx context.Context, ownerID, id string) error {
	// The index entry goes first so a crash leaves an orphan hash nobody lists rather than a listed
	// session that cannot be opened.
	if err := s.rdb.ZRem(ctx, userSessionsKey(ownerID), id).Err(); err != nil {
		return fmt.Errorf("store: unindex session: %w", err)
	}
	n, err := deleteSessionScript.Run(ctx, s.rdb,
		[]string{sessionKey(id), sessionSeqKey(id), sessionEventsKey(id), sessionMessagesKey(id),
			sessionActiveKey(id), sessionRunsKey(id), sessionLastRunKey(id), sessionConvsKey(id)},
		ownerID, runKey(id, "")).Int()
	if err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return s.deleteArtifacts(ctx, id)
}

// Messages returns a session's history, oldest first.
func (s *Store) Messages(ctx context.Context, sessionID string) ([]*agentdv1.Message, error) {
	raw, err := s.rdb.LRange(ctx, sessionMessagesKey(sessionID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	out := make([]*agentdv1.Message, 0, len(raw))
	for _, r := range raw {
		m, err := events.DecodeMessage([]byte(r))
		if err != nil {
			return nil, fmt.Errorf("store: decode message: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

func appendKeys(sid string) []string {
	return []string{sessionKey(sid), sessionSeqKey(sid), sessionEventsKey(sid), sessionMessagesKey(sid)}
}

// Append adds an event to the session's log — and to the history when it is a chat line (a message,
// a status, an error: events.HistoryEntry) — and returns the assigned sequence. A non-empty lease
// (run id and token) fences the write: it fails with ErrLeaseLost once another replica took the run
// over.
func (s *Store) Append(ctx context.Context, ev *agentdv1.Event, lease Lease) (uint32, error) {
	evJSON, msgJSON, err := encodeEvent(ev)
	if err != nil {
		return 0, err
	}
	sid := ev.GetSessionId()
	leaseKey := runLeaseKey(sid, lease.RunID)
	seq, err := appendEventScript.Run(ctx, s.rdb, append(appendKeys(sid), leaseKey),
		evJSON, msgJSON, lease.Token).Int64()
	if err != nil {
		return 0, fmt.Errorf("store: append event: %w", err)
	}
	switch seq {
	case 0:
		return 0, ErrNotFound
	case -1:
		return 0, ErrLeaseLost
	}
	return uint32(seq), nil
}

// encodeEvent returns the stored forms of an event and of its history entry ("" when it has none).
// The sequence is left out: the script assigns it as the stream entry's id.
func encodeEvent(ev *agentdv1.Event) (string, string, error) {
	if ev.GetSequence() != 0 {
		ev = proto.CloneOf(ev)
		ev.Sequence = 0
	}
	e, err := events.Encode(ev)
	if err != nil {
		return "", "", fmt.Errorf("store: encode event: %w", err)
	}
	m, ok := events.HistoryEntry(ev)
	if !ok {
		return string(e), "", nil
	}
	mb, err := events.Encode(m)
	if err != nil {
		return "", "", fmt.Errorf("store: encode message: %w", err)
	}
	return string(e), string(mb), nil
}

// EventsAfter returns up to count events with a sequence greater than after.
func (s *Store) EventsAfter(ctx context.Context, sessionID string, after uint32, count int64) ([]*agentdv1.Event, error) {
	msgs, err := s.rdb.XRangeN(ctx, sessionEventsKey(sessionID), fmt.Sprintf("(%d-0", after), "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("store: read events: %w", err)
	}
	return decodeEvents(msgs)
}

func decodeEvents(msgs []redis.XMessage) ([]*agentdv1.Event, error) {
	out := make([]*agentdv1.Event, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values["e"].(string)
		ev, err := events.DecodeEvent([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("store: decode event %s: %w", m.ID, err)
		}
		seq, _, _ := strings.Cut(m.ID, "-")
		n, err := strconv.ParseUint(seq, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("store: event id %q: %w", m.ID, err)
		}
		ev.Sequence = uint32(n)
		out = append(out, ev)
	}
	return out, nil
}

// SessionExists reports whether the session still exists.
func (s *Store) SessionExists(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, sessionKey(id)).Result()
	if err != nil {
		return false, fmt.Errorf("store: session exists: %w", err)
	}
	return n == 1, nil
}
