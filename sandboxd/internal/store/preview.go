package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
