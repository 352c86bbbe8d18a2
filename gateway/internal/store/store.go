// Package store keeps the gateway's state in its own Redis keyspace: users,
// refresh tokens, API keys and login-failure counters. It takes a
// redis.UniversalClient, so single node, Sentinel and Cluster all work; no
// operation spans two hash slots.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Domain errors. The auth service's funnel turns them into gRPC statuses.
var (
	ErrNotFound   = errors.New("not found")
	ErrEmailTaken = errors.New("email already registered")
)

// Store is the gateway's Redis persistence.
type Store struct {
	rdb redis.UniversalClient
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// User is an account.
type User struct {
	ID           string
	Email        string
	Name         string
	PasswordHash string
	Credits      int32
	Plan         string
	CreatedAt    time.Time
}

// CreateUser stores u, failing with ErrEmailTaken when its email is in use.
// The email index is claimed first with SET NX: two concurrent registrations
// of one email cannot both win, and a crash after the claim leaves only an
// index entry pointing at no user, which UserByEmail reports as ErrNotFound.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	ok, err := s.rdb.SetNX(ctx, KeyEmail(u.Email), u.ID, 0).Result()
	if err != nil {
		return fmt.Errorf("claim email: %w", err)
	}
	if !ok {
		return ErrEmailTaken
	}
	err = s.rdb.HSet(ctx, KeyUser(u.ID),
		"id", u.ID,
		"email", u.Email,
		"name", u.Name,
		"password_hash", u.PasswordHash,
		"credits", u.Credits,
		"plan", u.Plan,
		"created_at", u.CreatedAt.UnixMilli(),
	).Err()
	if err != nil {
		_ = s.rdb.Del(context.WithoutCancel(ctx), KeyEmail(u.Email)).Err()
		return fmt.Errorf("store user: %w", err)
	}
	return nil
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id string) (User, error) {
	m, err := s.rdb.HGetAll(ctx, KeyUser(id)).Result()
	if err != nil {
		return User{}, fmt.Errorf("load user: %w", err)
	}
	if len(m) == 0 {
		return User{}, ErrNotFound
	}
	credits, _ := strconv.ParseInt(m["credits"], 10, 32)
	created, _ := strconv.ParseInt(m["created_at"], 10, 64)
	return User{
		ID:           m["id"],
		Email:        m["email"],
		Name:         m["name"],
		PasswordHash: m["password_hash"],
		Credits:      int32(credits),
		Plan:         m["plan"],
		CreatedAt:    time.UnixMilli(created),
	}, nil
}

// UserByEmail returns the user registered with the normalised email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	id, err := s.rdb.Get(ctx, KeyEmail(email)).Result()
	if errors.Is(err, redis.Nil) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("load email: %w", err)
	}
	return s.User(ctx, id)
}

// Refresh-token errors.
var (
	// ErrRefreshReused is returned for a refresh token that was rotated before the grace period:
	// someone replays a token, so its whole family is revoked.
	ErrRefreshReused = errors.New("refresh token reused")
)

// RefreshToken is a stored refresh token: its user and its family (every
// token rotated from one login).
type RefreshToken struct {
	UserID string
	Family string
}

const (
	refreshActive = "active:"
	refreshUsed   = "used:"
)

func parseRefresh(v string) (state string, rt RefreshToken, ok bool) {
	for _, st := range []string{refreshActive, refreshUsed} {
		if rest, found := strings.CutPrefix(v, st); found {
			user, family, found := strings.Cut(rest, ":")
			return st, RefreshToken{UserID: user, Family: family}, found
		}
	}
	return "", RefreshToken{}, false
}

// SaveRefresh stores an active refresh token (by hash) until ttl passes.
func (s *Store) SaveRefresh(ctx context.Context, tokenHash string, rt RefreshToken, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, KeyRefresh(tokenHash), refreshActive+rt.UserID+":"+rt.Family, ttl).Err(); err != nil {
		return fmt.Errorf("store refresh token: %w", err)
	}
	return nil
}

// Refresh returns a stored refresh token, rotated or not.
func (s *Store) Refresh(ctx context.Context, tokenHash string) (RefreshToken, error) {
	v, err := s.rdb.Get(ctx, KeyRefresh(tokenHash)).Result()
	if errors.Is(err, redis.Nil) {
		return RefreshToken{}, ErrNotFound
	}
	if err != nil {
		return RefreshToken{}, fmt.Errorf("load refresh token: %w", err)
	}
	_, rt, ok := parseRefresh(v)
	if !ok {
		return RefreshToken{}, ErrNotFound
	}
	return rt, nil
}

// DeleteRefresh deletes a refresh token that was never handed out.
func (s *Store) DeleteRefresh(ctx context.Context, tokenHash string) error {
	return s.rdb.Del(ctx, KeyRefresh(tokenHash)).Err()
}

// rotateRefresh marks an active refresh token used, keeping its expiry, so a later replay of it is
// recognised as reuse rather than as an unknown token, and keeps what replaces it for the grace
// period; a call that finds the token already rotated gets that replacement while it lasts.
//
//	KEYS[1] the token (KeyRefresh)
//	KEYS[2] its successor (KeyRefreshSuccessor)
//	ARGV[1] the sealed successor pair
//	ARGV[2] the grace period in ms (0: none)
//	returns {"rotated", value}, {"concurrent", value, successor}, {"reused", value}, or false when
//	the token is unknown
var rotateRefresh = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  return false
end
if string.sub(v, 1, 7) == 'active:' then
  redis.call('SET', KEYS[1], 'used:' .. string.sub(v, 8), 'KEEPTTL')
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  end
  return {'rotated', v}
end
local successor = redis.call('GET', KEYS[2])
if successor then
  return {'concurrent', v, successor}
end
return {'reused', v}
`)

// Rotation is the outcome of RotateRefresh.
type Rotation int

// Outcomes of a rotation.
const (
	// Rotated: this call rotated the token; the sealed pair it passed replaces it.
	Rotated Rotation = iota + 1
	// RotatedConcurrently: another call rotated the token within the grace period; its sealed
	// pair is returned.
	RotatedConcurrently
)

// RotateRefresh consumes a refresh token for rotation. Of concurrent rotations of one token exactly
// one gets Rotated and stores sealed, the pair that replaces the token, for grace; the others, and
// any call within grace, get RotatedConcurrently with that pair. A call after grace gets
// ErrRefreshReused (with the token's record, so the family can be revoked); an unknown token is
// ErrNotFound.
func (s *Store) RotateRefresh(ctx context.Context, tokenHash string, sealed []byte, grace time.Duration) (Rotation, RefreshToken, []byte, error) {
	res, err := rotateRefresh.Run(ctx, s.rdb, []string{KeyRefresh(tokenHash), KeyRefreshSuccessor(tokenHash)},
		sealed, grace.Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return 0, RefreshToken{}, nil, ErrNotFound
	}
	if err != nil {
		return 0, RefreshToken{}, nil, fmt.Errorf("rotate refresh token: %w", err)
	}
	if len(res) < 2 {
		return 0, RefreshToken{}, nil, fmt.Errorf("rotate refresh token: unexpected reply %v", res)
	}
	outcome, _ := res[0].(string)
	value, _ := res[1].(string)
	_, rt, ok := parseRefresh(value)
	if !ok {
		return 0, RefreshToken{}, nil, ErrNotFound
	}
	switch outcome {
	case "rotated":
		return Rotated, rt, nil, nil
	case "concurrent":
		successor, _ := res[2].(string)
		return RotatedConcurrently, rt, []byte(successor), nil
	default:
		return 0, rt, nil, ErrRefreshReused
	}
}

// RevokeAccessToken revokes one access token (by its id) until it expires anyway.
func (s *Store) RevokeAccessToken(ctx context.Context, tokenID string, expires time.Time) error {
	// A second past the expiry: the key must not vanish while the token still verifies.
	err := s.rdb.SetArgs(ctx, KeyAccessTokenRevoked(tokenID), 1, redis.SetArgs{ExpireAt: expires.Add(time.Second)}).Err()
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}

// AccessRevoked reports whether an access token is revoked: by its own id (logout) or through its
// login family (logout, a refresh token replayed). One round trip: the keys live in different slots,
// so it is a pipeline of two reads, not a script.
func (s *Store) AccessRevoked(ctx context.Context, tokenID, family string) (bool, error) {
	pipe := s.rdb.Pipeline()
	byID := pipe.Exists(ctx, KeyAccessTokenRevoked(tokenID))
	var byFamily *redis.IntCmd
	if family != "" {
		byFamily = pipe.Exists(ctx, KeyRefreshFamilyRevoked(family))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("read access token revocation: %w", err)
	}
	return byID.Val() > 0 || (byFamily != nil && byFamily.Val() > 0), nil
}

// RevokeFamily revokes every token of a family for ttl (the longest a token
// of it can live).
func (s *Store) RevokeFamily(ctx context.Context, family string, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, KeyRefreshFamilyRevoked(family), 1, ttl).Err(); err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}

// FamilyRevoked reports whether a family was revoked.
func (s *Store) FamilyRevoked(ctx context.Context, family string) (bool, error) {
	n, err := s.rdb.Exists(ctx, KeyRefreshFamilyRevoked(family)).Result()
	if err != nil {
		return false, fmt.Errorf("read refresh family: %w", err)
	}
	return n > 0, nil
}

// deleteRefresh deletes a refresh token only when it belongs to the caller.
//
//	KEYS[1] the token (KeyRefresh)
//	ARGV[1] the caller's user id
//	returns the deleted value, or false when missing or someone else's
var deleteRefresh = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  return false
end
local rest = string.match(v, '^%a+:(.*)$')
if not rest or string.sub(rest, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':' then
  return false
end
redis.call('DEL', KEYS[1])
return v
`)

// RevokeRefresh deletes userID's refresh token and returns it (for its
// family); another user's token, or an unknown one, is ErrNotFound and
// stays untouched.
func (s *Store) RevokeRefresh(ctx context.Context, tokenHash, userID string) (RefreshToken, error) {
	v, err := deleteRefresh.Run(ctx, s.rdb, []string{KeyRefresh(tokenHash)}, userID).Text()
	if errors.Is(err, redis.Nil) {
		return RefreshToken{}, ErrNotFound
	}
	if err != nil {
		return RefreshToken{}, fmt.Errorf("revoke refresh token: %w", err)
	}
	_, rt, ok := parseRefresh(v)
	if !ok {
		return RefreshToken{}, ErrNotFound
	}
	return rt, nil
}

// revokeOwned deletes a hash record only when its user_id is the caller.
//
//	KEYS[1] the record (a hash with field user_id)
//	ARGV[1] the caller's user id
//	returns 1 when deleted, 0 when missing or owned by someone else
var revokeOwned = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'user_id')
if owner ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
`)

// APIKey is a stored API key; Hash is the SHA-256 of its secret.
type APIKey struct {
	ID         string
	UserID     string
	Name       string
	Prefix     string
	Hash       string
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// CreateAPIKey stores k and indexes it under its user. The key is written
// before the index so a listed id always resolves (a crash in between leaves
// an unlisted key that still works until revoked by id).
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) error {
	err := s.rdb.HSet(ctx, KeyAPIKey(k.ID),
		"id", k.ID, "user_id", k.UserID, "name", k.Name, "prefix", k.Prefix,
		"hash", k.Hash, "created_at", k.CreatedAt.UnixMilli(),
	).Err()
	if err != nil {
		return fmt.Errorf("store api key: %w", err)
	}
	if err := s.rdb.SAdd(ctx, KeyUserAPIKeys(k.UserID), k.ID).Err(); err != nil {
		return fmt.Errorf("index api key: %w", err)
	}
	return nil
}

// APIKey returns the key with id.
func (s *Store) APIKey(ctx context.Context, id string) (APIKey, error) {
	m, err := s.rdb.HGetAll(ctx, KeyAPIKey(id)).Result()
	if err != nil {
		return APIKey{}, fmt.Errorf("load api key: %w", err)
	}
	if len(m) == 0 {
		return APIKey{}, ErrNotFound
	}
	created, _ := strconv.ParseInt(m["created_at"], 10, 64)
	k := APIKey{
		ID: m["id"], UserID: m["user_id"], Name: m["name"], Prefix: m["prefix"], Hash: m["hash"],
		CreatedAt: time.UnixMilli(created),
	}
	if used, err := strconv.ParseInt(m["last_used_at"], 10, 64); err == nil {
		k.LastUsedAt = time.UnixMilli(used)
	}
	return k, nil
}

// ListAPIKeys returns userID's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]APIKey, error) {
	ids, err := s.rdb.SMembers(ctx, KeyUserAPIKeys(userID)).Result()
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	keys := make([]APIKey, 0, len(ids))
	for _, id := range ids {
		k, err := s.APIKey(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	sortByCreated(keys)
	return keys, nil
}

func sortByCreated(keys []APIKey) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j].CreatedAt.Before(keys[j-1].CreatedAt); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

// TouchAPIKey records a use of the key.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.rdb.HSet(ctx, KeyAPIKey(id), "last_used_at", at.UnixMilli()).Err()
}

// RevokeAPIKey deletes userID's key id; another user's key is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, userID, id string) error {
	n, err := revokeOwned.Run(ctx, s.rdb, []string{KeyAPIKey(id)}, userID).Int()
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	if err := s.rdb.SRem(ctx, KeyUserAPIKeys(userID), id).Err(); err != nil {
		return fmt.Errorf("unindex api key: %w", err)
	}
	return nil
}

// countFailure increments KEYS[1] and starts its window on the first hit.
//
//	KEYS[1] the counter
//	ARGV[1] the window in milliseconds
//	returns {count, remaining ttl in ms}
var countFailure = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
`)

// AddFailure counts a failed login against key (built with
// KeyLoginFailuresAccount or KeyLoginFailuresIP) in a fixed window.
func (s *Store) AddFailure(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	res, err := countFailure.Run(ctx, s.rdb, []string{key}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("count failure: %w", err)
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

// Failures returns the failure count of key and the time until it resets.
func (s *Store) Failures(ctx context.Context, key string) (int64, time.Duration, error) {
	pipe := s.rdb.Pipeline()
	get := pipe.Get(ctx, key)
	ttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("read failures: %w", err)
	}
	n, _ := get.Int64()
	return n, ttl.Val(), nil
}

// ResetFailures forgets the failures counted against key.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	return s.rdb.Del(ctx, key).Err()
}
