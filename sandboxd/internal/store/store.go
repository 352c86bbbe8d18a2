// Package store keeps sandboxd's state in Redis: sandbox records, session
// ownership, the activity index, exec leases and the warm pool. Every state
// transition that must not race another replica is one Lua script with a
// compare-and-set guard (scripts.go); every key is built in keys.go.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
)

// ErrNotFound means no record exists.
var ErrNotFound = errors.New("not found")

// ErrNotHeld means a compare-and-set lost: the record changed hands.
var ErrNotHeld = errors.New("record not held by this caller")

// States of a record.
const (
	StateCreating = "creating"
	StateRunning  = "running"
	StateReaping  = "reaping"
)

// Record is one session's sandbox.
type Record struct {
	SessionID    string
	OwnerID      string
	InstanceID   string
	InstanceName string
	Driver       string
	State        string
	Socket       string
	Endpoint     string // host:port of an agent on the network (Kubernetes), instead of Socket
	AgentPID     int
	Workspace    string
	Created      time.Time
	LastActive   time.Time
	Holder       string
	HolderUntil  time.Time
}

// Store is sandboxd's Redis state.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// New returns a store on rdb.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, now: time.Now}
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func parseRecord(m map[string]string) (Record, bool) {
	if len(m) == 0 || m[fState] == "" {
		return Record{}, false
	}
	return Record{
		SessionID: m[fSession], OwnerID: m[fOwner], InstanceID: m[fInstanceID], InstanceName: m[fName],
		Driver: m[fDriver], State: m[fState], Socket: m[fSocket], Endpoint: m[fEndpoint], Workspace: m[fWorkspace], AgentPID: atoi(m[fPID]),
		Created: fromMS(m[fCreated]), LastActive: fromMS(m[fLastActive]),
		Holder: m[fHolder], HolderUntil: fromMS(m[fHolderUntil]),
	}, true
}

// Get returns a session's record or ErrNotFound.
func (s *Store) Get(ctx context.Context, sessionID string) (Record, error) {
	m, err := s.rdb.HGetAll(ctx, sandboxKey(sessionID)).Result()
	if err != nil {
		return Record{}, fmt.Errorf("get sandbox: %w", err)
	}
	r, ok := parseRecord(m)
	if !ok {
		return Record{}, ErrNotFound
	}
	return r, nil
}

// Owner returns a session's owner or ErrNotFound.
func (s *Store) Owner(ctx context.Context, sessionID string) (string, error) {
	o, err := s.rdb.Get(ctx, ownerKey(sessionID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("get owner: %w", err)
	}
	return o, nil
}

// ForgetOwner removes a session's ownership record.
func (s *Store) ForgetOwner(ctx context.Context, sessionID string) error {
	return s.rdb.Del(ctx, ownerKey(sessionID)).Err()
}

// BeginCreate outcomes.
const (
	CreateOwnedByOther = "owner"
	CreateYours        = "create"
)

// BeginCreate records the owner (first caller wins) and claims the creation
// of the session's sandbox for holder for lease. It returns CreateYours when
// the caller must create the instance, CreateOwnedByOther, or the state of an
// existing record.
func (s *Store) BeginCreate(ctx context.Context, sessionID, ownerID, holder string, lease time.Duration) (string, error) {
	now := s.now()
	res, err := beginCreateScript.Run(ctx, s.rdb, []string{sandboxKey(sessionID), ownerKey(sessionID)},
		sessionID, ownerID, holder, ms(now), ms(now.Add(lease))).Text()
	if err != nil {
		return "", fmt.Errorf("begin create: %w", err)
	}
	if res == CreateYours {
		// Indexes outside the script: they live in other slots.
		// Reconciliation repairs them if we crash in between.
		pipe := s.rdb.Pipeline()
		pipe.SAdd(ctx, sandboxesKey, sessionID)
		pipe.SAdd(ctx, userSandboxesKey(ownerID), sessionID)
		pipe.ZAdd(ctx, activityKey, redis.Z{Score: float64(ms(now)), Member: sessionID})
		if _, err := pipe.Exec(ctx); err != nil {
			return "", fmt.Errorf("index sandbox: %w", err)
		}
	}
	return res, nil
}

// FinishCreate marks the caller's creating record running with its instance.
func (s *Store) FinishCreate(ctx context.Context, holder string, r Record) error {
	now := s.now()
	n, err := finishCreateScript.Run(ctx, s.rdb, []string{sandboxKey(r.SessionID)}, holder, ms(now),
		fInstanceID, r.InstanceID, fName, r.InstanceName, fDriver, r.Driver,
		fSocket, r.Socket, fEndpoint, r.Endpoint, fWorkspace, r.Workspace, fPID, r.AgentPID).Int()
	if err != nil {
		return fmt.Errorf("finish create: %w", err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return s.rdb.ZAdd(ctx, activityKey, redis.Z{Score: float64(ms(now)), Member: r.SessionID}).Err()
}

// Claim outcomes.
const (
	Claimed     = 1
	ClaimGone   = 0
	ClaimActive = -1
	ClaimBusy   = -2
)

// ClaimDestroy moves the record to "reaping" for holder. With a non-zero
// idleCutoff the claim succeeds only if the sandbox has been idle since then
// and runs no exec (the reaper); a zero cutoff claims unconditionally.
func (s *Store) ClaimDestroy(ctx context.Context, sessionID, holder string, lease time.Duration, idleCutoff time.Time) (int, error) {
	now := s.now()
	cutoff := ""
	if !idleCutoff.IsZero() {
		cutoff = strconv.FormatInt(ms(idleCutoff), 10)
	}
	n, err := claimDestroyScript.Run(ctx, s.rdb, []string{sandboxKey(sessionID), execsKey(sessionID)},
		holder, ms(now), ms(now.Add(lease)), cutoff).Int()
	if err != nil {
		return 0, fmt.Errorf("claim destroy: %w", err)
	}
	return n, nil
}

// Delete removes a record the caller holds, and its index entries.
func (s *Store) Delete(ctx context.Context, r Record, holder string) error {
	n, err := deleteScript.Run(ctx, s.rdb, []string{sandboxKey(r.SessionID), execsKey(r.SessionID)}, holder).Int()
	if err != nil {
		return fmt.Errorf("delete sandbox: %w", err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return s.unindex(ctx, r.SessionID, r.OwnerID)
}

func (s *Store) unindex(ctx context.Context, sessionID, ownerID string) error {
	pipe := s.rdb.Pipeline()
	pipe.SRem(ctx, sandboxesKey, sessionID)
	pipe.ZRem(ctx, activityKey, sessionID)
	if ownerID != "" {
		pipe.SRem(ctx, userSandboxesKey(ownerID), sessionID)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Count is the number of sandbox records (every replica's).
func (s *Store) Count(ctx context.Context) (int64, error) {
	return s.rdb.SCard(ctx, sandboxesKey).Result()
}

// Touch records activity on a sandbox now.
func (s *Store) Touch(ctx context.Context, sessionID string) error {
	now := s.now()
	n, err := s.scriptAndIndex(ctx, touchScript, sessionID, now, []string{sandboxKey(sessionID)}, ms(now))
	if err != nil {
		return fmt.Errorf("touch: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// OwnerAndRecord returns a session's owner and record in one round trip;
// either may be missing (ErrNotFound for the owner, ok=false for the record).
func (s *Store) OwnerAndRecord(ctx context.Context, sessionID string) (string, Record, bool, error) {
	pipe := s.rdb.Pipeline()
	owner := pipe.Get(ctx, ownerKey(sessionID))
	rec := pipe.HGetAll(ctx, sandboxKey(sessionID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", Record{}, false, fmt.Errorf("get sandbox: %w", err)
	}
	o, err := owner.Result()
	if errors.Is(err, redis.Nil) {
		return "", Record{}, false, ErrNotFound
	}
	if err != nil {
		return "", Record{}, false, err
	}
	r, ok := parseRecord(rec.Val())
	return o, r, ok, nil
}

// scriptAndIndex runs a per-sandbox script and, in the same round trip, the
// activity index update (another slot, so not inside the script). An index
// entry for a record the script found gone is harmless: the reaper drops it.
func (s *Store) scriptAndIndex(ctx context.Context, script *redis.Script, sessionID string, now time.Time, keys []string, args ...any) (int, error) {
	pipe := s.rdb.Pipeline()
	res := script.EvalSha(ctx, pipe, keys, args...)
	pipe.ZAdd(ctx, activityKey, redis.Z{Score: float64(ms(now)), Member: sessionID})
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(res.Err(), "NOSCRIPT") {
		// First use on this server: load it, and index separately.
		n, err := script.Run(ctx, s.rdb, keys, args...).Int()
		if err != nil {
			return 0, err
		}
		return n, s.rdb.ZAdd(ctx, activityKey, redis.Z{Score: float64(ms(now)), Member: sessionID}).Err()
	}
	if err != nil {
		return 0, err
	}
	return res.Int()
}

// BeginExec registers exec id as running until its lease ends; it fails with
// ErrNotHeld when the sandbox is not running.
func (s *Store) BeginExec(ctx context.Context, sessionID, id string, lease time.Duration) error {
	now := s.now()
	n, err := s.scriptAndIndex(ctx, beginExecScript, sessionID, now, []string{sandboxKey(sessionID), execsKey(sessionID)},
		id, ms(now), ms(now.Add(lease)))
	if err != nil {
		return fmt.Errorf("begin exec: %w", err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return nil
}

// ExtendExec renews a running exec's lease.
func (s *Store) ExtendExec(ctx context.Context, sessionID, id string, lease time.Duration) error {
	return s.rdb.ZAddXX(ctx, execsKey(sessionID), redis.Z{Score: float64(ms(s.now().Add(lease))), Member: id}).Err()
}

// EndExec removes a finished exec's lease and records the activity.
func (s *Store) EndExec(ctx context.Context, sessionID, id string) error {
	now := s.now()
	_, err := s.scriptAndIndex(ctx, endExecScript, sessionID, now, []string{sandboxKey(sessionID), execsKey(sessionID)}, id, ms(now))
	return err
}

// IdleBefore returns up to limit session ids whose last activity in the
// index is at or before cutoff, oldest first.
func (s *Store) IdleBefore(ctx context.Context, cutoff time.Time, limit int64) ([]string, error) {
	return s.rdb.ZRangeByScore(ctx, activityKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(ms(cutoff), 10), Count: limit,
	}).Result()
}

// Unindex drops a session from the activity index (a stale entry).
func (s *Store) Unindex(ctx context.Context, sessionID string) error {
	return s.rdb.ZRem(ctx, activityKey, sessionID).Err()
}

// All returns every record (reconciliation; O(sandboxes)). Index entries
// without a record are dropped as it goes.
func (s *Store) All(ctx context.Context) ([]Record, error) {
	ids, err := s.rdb.SMembers(ctx, sandboxesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return s.records(ctx, ids, sandboxesKey)
}

// ByOwner returns a user's records.
func (s *Store) ByOwner(ctx context.Context, ownerID string) ([]Record, error) {
	ids, err := s.rdb.SMembers(ctx, userSandboxesKey(ownerID)).Result()
	if err != nil {
		return nil, fmt.Errorf("list user sandboxes: %w", err)
	}
	return s.records(ctx, ids, userSandboxesKey(ownerID))
}

func (s *Store) records(ctx context.Context, ids []string, index string) ([]Record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, sandboxKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("load sandboxes: %w", err)
	}
	out := make([]Record, 0, len(ids))
	for i, cmd := range cmds {
		r, ok := parseRecord(cmd.Val())
		if !ok {
			s.rdb.SRem(ctx, index, ids[i])
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// Reindex restores a record's index entries (after a crash between a script
// and its index update).
func (s *Store) Reindex(ctx context.Context, r Record) error {
	pipe := s.rdb.Pipeline()
	pipe.SAdd(ctx, sandboxesKey, r.SessionID)
	if r.OwnerID != "" {
		pipe.SAdd(ctx, userSandboxesKey(r.OwnerID), r.SessionID)
	}
	pipe.ZAddNX(ctx, activityKey, redis.Z{Score: float64(ms(r.LastActive)), Member: r.SessionID})
	_, err := pipe.Exec(ctx)
	return err
}

// poolEntry is a warm sandbox ready to be claimed, as stored. Its JSON is its identity in the set
// (PoolRemove encodes it again), so its fields and their order never change.
type poolEntry struct {
	InstanceID   string `json:"id"`
	InstanceName string `json:"name"`
	Socket       string `json:"socket"`
	Endpoint     string `json:"endpoint,omitempty"`
	PID          int    `json:"pid"`
	Workspace    string `json:"workspace"`
	Driver       string `json:"driver"`
	WorkspaceID  string `json:"wid,omitempty"`
	Version      string `json:"v,omitempty"`
}

func encodePoolEntry(driverName string, in driver.Instance) []byte {
	b, _ := json.Marshal(poolEntry{InstanceID: in.ID, InstanceName: in.Name, Socket: in.Socket, Endpoint: in.Endpoint, PID: in.PID,
		Workspace: in.Workspace, Driver: driverName, WorkspaceID: in.WorkspaceID, Version: in.Version})
	return b
}

func (e poolEntry) instance() driver.Instance {
	return driver.Instance{ID: e.InstanceID, Name: e.InstanceName, Socket: e.Socket, Endpoint: e.Endpoint, PID: e.PID, Workspace: e.Workspace,
		WorkspaceID: e.WorkspaceID, Version: e.Version, Running: true}
}

// PoolAdd offers a warm sandbox of driverName.
func (s *Store) PoolAdd(ctx context.Context, driverName string, in driver.Instance) error {
	return s.rdb.SAdd(ctx, poolKey, encodePoolEntry(driverName, in)).Err()
}

// PoolClaim takes one warm sandbox of driverName; ok is false when the pool is empty. SPOP is
// atomic, so two replicas never claim the same one.
func (s *Store) PoolClaim(ctx context.Context, driverName string) (in driver.Instance, ok bool, err error) {
	for {
		v, err := s.rdb.SPop(ctx, poolKey).Result()
		if errors.Is(err, redis.Nil) {
			return driver.Instance{}, false, nil
		}
		if err != nil {
			return driver.Instance{}, false, fmt.Errorf("claim pool: %w", err)
		}
		var e poolEntry
		if json.Unmarshal([]byte(v), &e) != nil || e.Driver != driverName {
			continue // junk or another driver's: drop it, reconciliation removes the instance
		}
		return e.instance(), true, nil
	}
}

// PoolEntries lists the pool's sandboxes of driverName.
func (s *Store) PoolEntries(ctx context.Context, driverName string) ([]driver.Instance, error) {
	vs, err := s.rdb.SMembers(ctx, poolKey).Result()
	if err != nil {
		return nil, err
	}
	out := make([]driver.Instance, 0, len(vs))
	for _, v := range vs {
		var e poolEntry
		if json.Unmarshal([]byte(v), &e) == nil && e.Driver == driverName {
			out = append(out, e.instance())
		}
	}
	return out, nil
}

// PoolRemove drops an entry; removed is false when it was not in the pool (claimed meanwhile).
func (s *Store) PoolRemove(ctx context.Context, driverName string, in driver.Instance) (removed bool, err error) {
	n, err := s.rdb.SRem(ctx, poolKey, encodePoolEntry(driverName, in)).Result()
	return n == 1, err
}

// PoolSize counts warm sandboxes.
func (s *Store) PoolSize(ctx context.Context) (int64, error) {
	return s.rdb.SCard(ctx, poolKey).Result()
}

// AcquirePoolRefill takes the refill lease for holder (or renews it).
func (s *Store) AcquirePoolRefill(ctx context.Context, holder string, lease time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, poolRefillKey, holder, lease).Result()
	if err != nil || ok {
		return ok, err
	}
	cur, err := s.rdb.Get(ctx, poolRefillKey).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil // expired between the two commands; next round
	}
	if err != nil {
		return false, err
	}
	if cur == holder {
		return true, s.rdb.Expire(ctx, poolRefillKey, lease).Err()
	}
	return false, nil
}
