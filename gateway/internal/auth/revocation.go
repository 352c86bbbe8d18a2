package auth

import (
	"context"
	"sync"
	"time"

	"github.com/mgx-ai/mgx/gateway/internal/store"
)

// revocations answers, for every request with an access token, whether the token was revoked: by
// itself (logout) or with its login family (logout, a replayed refresh token). The answer lives in
// Redis, shared by every replica; asking Redis on every request would cost a round trip per request,
// so each replica remembers a "not revoked" answer for ttl (GATEWAY_REVOCATION_CACHE_TTL) and a
// "revoked" one until the token expires.
//
// The price is a window: a token revoked through another replica still works on this one for at
// most ttl after this replica last asked about it. The replica that revokes a token (it serves the
// logout) knows at once.
type revocations struct {
	store *store.Store
	ttl   time.Duration
	now   func() time.Time

	mu        sync.Mutex
	tokens    map[string]verdict   // token id → what Redis said, until when
	families  map[string]time.Time // family revoked here → until its last access token expired
	nextSweep time.Time
}

type verdict struct {
	revoked bool
	until   time.Time
}

func newRevocations(st *store.Store, ttl time.Duration, now func() time.Time) *revocations {
	return &revocations{store: st, ttl: ttl, now: now, tokens: map[string]verdict{}, families: map[string]time.Time{}}
}

// revoked reports whether the access token p authenticated with is revoked.
func (r *revocations) revoked(ctx context.Context, p Principal) (bool, error) {
	if p.TokenID == "" {
		return false, nil
	}
	now := r.now()
	r.mu.Lock()
	if until, ok := r.families[p.Family]; ok && p.Family != "" && now.Before(until) {
		r.mu.Unlock()
		return true, nil
	}
	if v, ok := r.tokens[p.TokenID]; ok && now.Before(v.until) {
		r.mu.Unlock()
		return v.revoked, nil
	}
	r.mu.Unlock()

	revoked, err := r.store.AccessRevoked(ctx, p.TokenID, p.Family)
	if err != nil {
		return false, err
	}
	if r.ttl <= 0 && !revoked {
		return false, nil
	}
	v := verdict{revoked: revoked, until: now.Add(r.ttl)}
	if revoked {
		v.until = p.Expires
	}
	r.remember(now, p.TokenID, v)
	return revoked, nil
}

// revokeToken records a revocation made by this replica.
func (r *revocations) revokeToken(tokenID string, expires time.Time) {
	r.remember(r.now(), tokenID, verdict{revoked: true, until: expires})
}

// revokeFamily records a family revocation made by this replica, for as long as an access token
// issued before it can live.
func (r *revocations) revokeFamily(family string, accessTTL time.Duration) {
	if family == "" {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.families[family] = now.Add(accessTTL)
}

func (r *revocations) remember(now time.Time, tokenID string, v verdict) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[tokenID] = v
	// Entries die with their ttl or their token: sweeping once per period keeps the maps as small as
	// the tokens seen in one period plus the revoked ones still alive.
	if now.Before(r.nextSweep) {
		return
	}
	r.nextSweep = now.Add(max(r.ttl, time.Second))
	for id, v := range r.tokens {
		if !now.Before(v.until) {
			delete(r.tokens, id)
		}
	}
	for f, until := range r.families {
		if !now.Before(until) {
			delete(r.families, f)
		}
	}
}
