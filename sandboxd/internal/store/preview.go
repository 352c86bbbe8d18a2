package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// PreviewSigningKey returns the deployment's preview signing key, creating a random one when none exists.
// It is never derived from another secret: a sandbox that learned the derivation's input (the internal
// token, say, on a driver without isolation) could otherwise mint preview tokens for any session.
func (s *Store) PreviewSigningKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	// SET NX then GET: whichever replica wins, every replica reads the same key.
	if err := s.rdb.SetNX(ctx, previewSigningKey, hex.EncodeToString(fresh), 0).Err(); err != nil {
		return nil, fmt.Errorf("preview signing key: %w", err)
	}
	v, err := s.rdb.Get(ctx, previewSigningKey).Result()
	if err != nil {
		return nil, fmt.Errorf("preview signing key: %w", err)
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("preview signing key in Redis is malformed")
	}
	return key, nil
}

// PreviewGrant is what a preview capability is checked against: the incarnation of the sandbox
// running the session now, and the session's latest rotation.
type PreviewGrant struct {
	// Incarnation names the sandbox instance running the session ("" when none runs): the
	// instance id with the record's creation time, so a sandbox destroyed and created again —
	// even under the same instance name, as the local driver does — is another incarnation.
	Incarnation string
	// RevokedThrough: every capability expiring at or before it is revoked (zero: none).
	RevokedThrough time.Time
}

// PreviewGrant reads a session's grant in one round trip.
func (s *Store) PreviewGrant(ctx context.Context, sessionID string) (PreviewGrant, error) {
	pipe := s.rdb.Pipeline()
	rec := pipe.HMGet(ctx, sandboxKey(sessionID), fState, fInstanceID, fCreated)
	rev := pipe.Get(ctx, previewRevokedKey(sessionID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return PreviewGrant{}, fmt.Errorf("preview grant: %w", err)
	}
	var g PreviewGrant
	if v := rec.Val(); len(v) == 3 {
		state, _ := v[0].(string)
		id, _ := v[1].(string)
		created, _ := v[2].(string)
		if state == StateRunning && id != "" {
			g.Incarnation = id + "@" + created
		}
	}
	if n, err := rev.Int64(); err == nil {
		g.RevokedThrough = time.Unix(n, 0)
	}
	return g, nil
}

// revokePreviewsScript moves a session's revocation mark forward.
//
// KEYS[1] the session's preview revocation mark
// ARGV[1] the wanted mark (unix s), ARGV[2] the key's lifetime (s)
// Returns the mark set: the wanted one, or one second past the current mark when that is already
// as late, so that every rotation revokes what the previous one handed out, even within a second.
var revokePreviewsScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local mark = tonumber(ARGV[1])
if mark <= cur then mark = cur + 1 end
redis.call('SET', KEYS[1], mark, 'EX', tonumber(ARGV[2]))
return mark
`)

// RevokePreviews revokes every preview capability of a session that expires at or before through
// (or, when an earlier rotation already reached that far, one second past it), and returns the
// mark set. The mark is kept for keep beyond it, then forgotten: by then whatever it revoked has
// expired anyway.
func (s *Store) RevokePreviews(ctx context.Context, sessionID string, through time.Time, keep time.Duration) (time.Time, error) {
	life := through.Sub(s.now()) + keep
	n, err := revokePreviewsScript.Run(ctx, s.rdb, []string{previewRevokedKey(sessionID)}, through.Unix(), max(int64(life/time.Second), 1)+1).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke previews: %w", err)
	}
	return time.Unix(n, 0), nil
}
