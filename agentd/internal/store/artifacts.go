package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// ErrArtifactTooLarge: an artifact over MaxArtifactBytes is refused.
var ErrArtifactTooLarge = errors.New("artifact too large")

// Bounds of a session's artifacts: the oldest go first when a new one would pass either.
const (
	MaxArtifactBytes        = 10 << 20
	MaxArtifactsPerSession  = 200
	MaxSessionArtifactBytes = 200 << 20
)

// Artifact is a file a tool produced for the user to see — a preview screenshot, a chart — kept with
// the session and downloadable by its owner. The bytes are stored beside the metadata.
type Artifact struct {
	ID          string `json:"id"`
	SessionID   string `json:"session_id"`
	RunID       string `json:"run_id,omitempty"`
	Agent       string `json:"agent,omitempty"`
	Tool        string `json:"tool,omitempty"`
	CallID      string `json:"call_id,omitempty"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	// Source is what the artifact shows: the page a screenshot was taken of, or the workspace path
	// a chart was written to.
	Source    string    `json:"source,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// saveArtifactScript stores an artifact unless the session is gone, then drops the oldest artifacts
// while the session holds more than the allowed count or bytes.
//
// KEYS: 1 session, 2 metadata hash, 3 data hash, 4 index (sorted by creation)
// ARGV: 1 id, 2 metadata JSON, 3 data, 4 created (unix ms), 5 max count, 6 max bytes
// Returns the number of artifacts dropped, or -1 when the session does not exist.
var saveArtifactScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
local ids = redis.call('ZRANGE', KEYS[4], 0, -1)
local total = 0
for _, id in ipairs(ids) do total = total + redis.call('HSTRLEN', KEYS[3], id) end
local count, dropped = #ids, 0
for _, id in ipairs(ids) do
  if count <= tonumber(ARGV[5]) and total <= tonumber(ARGV[6]) then break end
  if id == ARGV[1] then break end
  total = total - redis.call('HSTRLEN', KEYS[3], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  count, dropped = count - 1, dropped + 1
end
return dropped
`)

// SaveArtifact stores data as an artifact of a.SessionID and returns it with its id, size and time.
func (s *Store) SaveArtifact(ctx context.Context, a Artifact, data []byte) (Artifact, error) {
	if len(data) > MaxArtifactBytes {
		return Artifact{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrArtifactTooLarge, len(data), MaxArtifactBytes)
	}
	if a.ID == "" {
		a.ID = uuid.NewString()
	}
	a.Size = int64(len(data))
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now().UTC()
	}
	meta, err := json.Marshal(a)
	if err != nil {
		return Artifact{}, fmt.Errorf("store: encode artifact: %w", err)
	}
	sid := a.SessionID
	n, err := saveArtifactScript.Run(ctx, s.rdb,
		[]string{sessionKey(sid), sessionArtifactsKey(sid), sessionArtifactDataKey(sid), sessionArtifactIndexKey(sid)},
		a.ID, meta, data, a.CreatedAt.UnixMilli(), MaxArtifactsPerSession, MaxSessionArtifactBytes).Int64()
	if err != nil {
		return Artifact{}, fmt.Errorf("store: save artifact: %w", err)
	}
	if n < 0 {
		return Artifact{}, ErrNotFound
	}
	return a, nil
}

// ListArtifacts returns the artifacts of ownerID's session, oldest first.
func (s *Store) ListArtifacts(ctx context.Context, ownerID, sessionID string) ([]Artifact, error) {
	if _, err := s.GetSession(ctx, ownerID, sessionID); err != nil {
		return nil, err
	}
	raw, err := s.rdb.HGetAll(ctx, sessionArtifactsKey(sessionID)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list artifacts: %w", err)
	}
	out := make([]Artifact, 0, len(raw))
	for _, v := range raw {
		var a Artifact
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("store: decode artifact: %w", err)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// GetArtifact returns an artifact of ownerID's session with its bytes. Another user's session, an
// unknown id and an artifact dropped for space are all ErrNotFound.
func (s *Store) GetArtifact(ctx context.Context, ownerID, sessionID, id string) (Artifact, []byte, error) {
	if _, err := s.GetSession(ctx, ownerID, sessionID); err != nil {
		return Artifact{}, nil, err
	}
	var meta, data *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGet(ctx, sessionArtifactsKey(sessionID), id)
		data = p.HGet(ctx, sessionArtifactDataKey(sessionID), id)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return Artifact{}, nil, ErrNotFound
	}
	if err != nil {
		return Artifact{}, nil, fmt.Errorf("store: get artifact: %w", err)
	}
	var a Artifact
	if err := json.Unmarshal([]byte(meta.Val()), &a); err != nil {
		return Artifact{}, nil, fmt.Errorf("store: decode artifact: %w", err)
	}
	b, err := data.Bytes()
	if err != nil {
		return Artifact{}, nil, ErrNotFound
	}
	return a, b, nil
}

// deleteArtifacts removes every artifact of a session (with the session).
func (s *Store) deleteArtifacts(ctx context.Context, sid string) error {
	return s.rdb.Del(ctx, sessionArtifactsKey(sid), sessionArtifactDataKey(sid), sessionArtifactIndexKey(sid)).Err()
}
